"""Detect people and their AVA actions in a video; write an annotated mp4, an AVA CSV and JSON.

Reads VIDEO (any format PyAV decodes), a config, optional action weights (MODEL.WEIGHTS) and the
person detector's files. Writes OUT.mp4 (H.264, same frame count and fps as the input span),
the AVA-format CSV (`tools/eval_ava.py` reads it) and a JSON of the top actions per person.
Without MODEL.WEIGHTS the action model is untrained (said on screen and in the video).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detection.apps.cli import run_tool
from detection.config import load_config
from detection.engine.demo import UNTRAINED_NOTICE, DemoResult, run_demo

DEFAULT_OUTPUT_DIR = Path("demo_output")


def build_parser(
    *,
    default_config: str | None = None,
    default_input: str | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The demo's arguments. `--config` and `--input` are required unless a default is given
    (tools/demo_net.py gives the repository's R50 config and bundled clip)."""
    parser = argparse.ArgumentParser(
        description=description or __doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=default_config,
        required=default_config is None,
        help="model/demo config YAML"
        + (" (default: %(default)s)" if default_config is not None else ""),
    )
    parser.add_argument(
        "--input",
        default=default_input,
        required=default_input is None,
        help="input video" + (" (default: %(default)s)" if default_input is not None else ""),
    )
    parser.add_argument(
        "--output",
        help=f"annotated mp4 to write (default: {DEFAULT_OUTPUT_DIR}/<input stem>_actions.mp4)",
    )
    parser.add_argument("--csv", help="AVA-format CSV to write (default: beside --output)")
    parser.add_argument(
        "--json", help="JSON of the top actions per person (default: beside --output)"
    )
    parser.add_argument(
        "--detector",
        choices=["hog", "torchvision", "detectron2", "csv"],
        help="person detector (overrides DEMO.DETECTOR)",
    )
    parser.add_argument(
        "--start", type=float, default=0.0, help="first second of the span (default: 0)"
    )
    parser.add_argument(
        "--end", type=float, help="end of the span in seconds (default: end of video)"
    )
    parser.add_argument(
        "--ava-second-offset",
        type=int,
        default=0,
        help="added to keyframe seconds in the CSV; 900 for AVA's 15-minute cuts",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="KEY VALUE config overrides, e.g. MODEL.WEIGHTS f.pkl",
    )
    return parser


def run_demo_from_args(args: argparse.Namespace) -> DemoResult:
    """Parsed arguments -> outputs on disk and a summary on stdout."""
    opts = list(args.opts)
    if args.detector:
        opts += ["DEMO.DETECTOR", args.detector]
    cfg = load_config(args.config, opts)
    input_path = Path(args.input)
    output = (
        Path(args.output) if args.output else DEFAULT_OUTPUT_DIR / f"{input_path.stem}_actions.mp4"
    )
    csv_path = Path(args.csv) if args.csv else output.with_suffix(".csv")
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
    if not cfg.MODEL.WEIGHTS:
        print(
            f"note: no MODEL.WEIGHTS given, {UNTRAINED_NOTICE}. "
            "README shows how to use the official AVA checkpoint."
        )
    result = run_demo(
        cfg,
        input_path,
        output,
        output_csv=csv_path,
        output_json=json_path,
        start_s=args.start,
        end_s=args.end,
        ava_second_offset=args.ava_second_offset,
        show_progress=not args.quiet,
    )
    persons = sum(len(p) for p in result.predictions)
    print(
        f"{len(result.predictions)} keyframes, {persons} person boxes, {result.frames_written} "
        f"frames at {result.fps:g} fps\nwrote {output}\nwrote {csv_path}\nwrote {json_path}"
    )
    return result


def main(
    argv: list[str] | None = None,
    *,
    default_config: str | None = None,
    default_input: str | None = None,
    description: str | None = None,
) -> int:
    """The demo tool: parse `argv` (sys.argv[1:] when None), run, print; user errors exit with
    code 2 in one line. Returns 0."""
    args = build_parser(
        default_config=default_config, default_input=default_input, description=description
    ).parse_args(argv)
    run_tool(lambda: run_demo_from_args(args))
    return 0
