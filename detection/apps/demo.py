"""Detect people, track them and their AVA actions in a video; write an annotated mp4, an AVA
CSV, a JSON with track ids, per-person action segments (CSV and JSON) and a timeline PNG.

Reads VIDEO (any format PyAV decodes; also a folder or .txt list of videos, or a live source:
/dev/videoN, rtsp:// http:// udp:// URLs, - for a stream piped on stdin), a config, optional
action weights (MODEL.WEIGHTS) and the person detector's files. Runs the streaming engine
(`detection.engine.stream`: each frame decoded once, decoding, detection + tracking, the action
model and drawing run concurrently). Writes OUT.mp4 (H.264, same frame count and fps as the
input span), beside it OUT.csv (AVA format, `tools/eval_ava.py` reads it), OUT.json (top actions
per person and keyframe, with track ids), OUT_segments.csv/.json and OUT_timeline.png. Live
sources skip keyframes the models cannot keep up with and say how many.
Without MODEL.WEIGHTS the action model is untrained (said on screen and in the video).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm
from yacs.config import CfgNode

from detection.apps.cli import run_tool
from detection.config import load_config
from detection.engine.demo import UNTRAINED_NOTICE, DemoError, DemoResult, run_demo
from detection.engine.predictor import ActionPredictor
from detection.engine.sources import (
    DEFAULT_LIVE_TIMEOUT_S,
    expand_sources,
    is_live,
    live_stem,
    open_source,
)
from detection.engine.stream import EngineOptions, EngineResult, OutputPaths, StreamEngine

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
        help="input: a video, a folder or .txt list of videos, or a live source (/dev/video0, "
        "rtsp:// http:// udp:// URL, - for stdin)"
        + (" (default: %(default)s)" if default_input is not None else ""),
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
    parser.add_argument(
        "--segments",
        help="per-person action segments CSV (a JSON beside it; default: beside --output)",
    )
    parser.add_argument(
        "--timeline", help="per-person action timeline PNG (default: beside --output)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="keyframes per action-model call (default: %(default)s; 4-8 on a GPU)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="live sources: stop after this many seconds of video (default: when it ends)",
    )
    parser.add_argument(
        "--live-timeout",
        type=float,
        default=DEFAULT_LIVE_TIMEOUT_S,
        help="live sources: the stream has ended after this many seconds without data",
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the old demo loop (every stage in turn, no tracks) for comparison",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="KEY VALUE config overrides, e.g. MODEL.WEIGHTS f.pkl",
    )
    return parser


def _outputs_for(args: argparse.Namespace, input_spec: str, output_dir: Path | None) -> OutputPaths:
    stem = open_stem(input_spec)
    if output_dir is not None:
        return OutputPaths.beside(output_dir / f"{stem}_actions.mp4")
    output = Path(args.output) if args.output else DEFAULT_OUTPUT_DIR / f"{stem}_actions.mp4"
    return OutputPaths.beside(
        output,
        csv=args.csv,
        json=args.json,
        segments_csv=args.segments,
        segments_json=Path(args.segments).with_suffix(".json") if args.segments else None,
        timeline=args.timeline,
    )


def _complete(outputs: OutputPaths) -> bool:
    # Every output is written atomically, so a file that exists is a finished one.
    return all(p is None or p.is_file() for p in vars(outputs).values())


def run_demo_from_args(args: argparse.Namespace) -> EngineResult | DemoResult | list[EngineResult]:
    """Parsed arguments -> outputs on disk and a summary on stdout. One input runs as before;
    a folder or list of videos (``--input DIR`` or ``--input LIST.txt``) writes each video's
    outputs into --output (a folder), skipping videos whose outputs all exist."""
    opts = list(args.opts)
    if args.detector:
        opts += ["DEMO.DETECTOR", args.detector]
    cfg = load_config(args.config, opts)
    inputs = expand_sources([args.input])
    if not cfg.MODEL.WEIGHTS:
        print(
            f"note: no MODEL.WEIGHTS given, {UNTRAINED_NOTICE}. "
            "README shows how to use the official AVA checkpoint."
        )
    if args.sequential:
        return _run_sequential(cfg, args, inputs)
    many = len(inputs) > 1 or Path(args.input).is_dir()
    output_dir = (Path(args.output) if args.output else DEFAULT_OUTPUT_DIR) if many else None
    plans = [(spec, _outputs_for(args, spec, output_dir)) for spec in inputs]
    todo = [(spec, out) for spec, out in plans if not (many and _complete(out))]
    if many and len(todo) < len(plans):
        print(f"skipping {len(plans) - len(todo)} of {len(plans)} videos: outputs complete")
    # The first source is opened before the models load, so a bad input is reported at once.
    first = open_source(todo[0][0], timeout_s=args.live_timeout) if todo else None
    engine = StreamEngine(
        cfg,
        ActionPredictor.from_config(cfg),
        EngineOptions(batch_size=args.batch_size, max_seconds=args.max_seconds),
    )
    results = []
    overall = tqdm(total=len(todo), desc="videos", unit="video", disable=not many or args.quiet)
    with overall:
        for number, (spec, outputs) in enumerate(todo):
            source = first if number == 0 else open_source(spec, timeout_s=args.live_timeout)
            assert source is not None
            try:
                result = engine.run(
                    source,
                    outputs,
                    start_s=args.start,
                    end_s=args.end,
                    ava_second_offset=args.ava_second_offset,
                    show_progress=not args.quiet,
                )
            finally:
                source.close()
            results.append(result)
            overall.update()
            if not many:
                _print_one(result)
    if many:
        _print_summary(results)
        return results
    return results[0]


def open_stem(spec: str) -> str:
    """The name outputs of `spec` are called after: a file's stem, a live source's address."""
    return Path(spec).stem if not is_live(spec) else live_stem(spec)


def _print_one(result: EngineResult) -> None:
    persons = sum(len(p) for p in result.predictions)
    outputs = result.outputs
    assert outputs is not None
    lines = [
        f"{len(result.results)} keyframes, {persons} person boxes, {result.frames_written} "
        f"frames at {result.fps:g} fps",
        f"{result.num_tracks} tracked persons, {len(result.segments)} action segments",
    ]
    if result.skipped_keyframes:
        lines.append(
            f"live: skipped {result.skipped_keyframes} keyframes to keep up with the stream"
        )
    lines += [f"wrote {p}" for p in vars(outputs).values() if p is not None]
    print("\n".join(lines))


def _print_summary(results: list[EngineResult]) -> None:
    print("\n| video | seconds | keyframes | persons | frames | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        seconds = r.span_s[1] - r.span_s[0]
        print(
            f"| {Path(r.source).name} | {seconds:.1f} | {len(r.results)} | {r.num_tracks} | "
            f"{r.frames_written} | {r.wall_s:.1f} |"
        )
    hours = sum(r.span_s[1] - r.span_s[0] for r in results) / 3600
    print(
        f"| **{len(results)} videos** | {hours:.3f} h | {sum(len(r.results) for r in results)} | "
        f"{sum(r.num_tracks for r in results)} | {sum(r.frames_written for r in results)} | "
        f"{sum(r.wall_s for r in results):.1f} |"
    )


def _run_sequential(cfg: CfgNode, args: argparse.Namespace, inputs: list[str]) -> DemoResult:
    """The demo before the engine: every stage in turn, the span decoded twice (kept to compare
    with; one file only, no tracks or segments)."""
    if len(inputs) != 1 or is_live(inputs[0]):
        raise DemoError("--sequential takes one video file")
    input_path = Path(inputs[0])
    output = (
        Path(args.output) if args.output else DEFAULT_OUTPUT_DIR / f"{input_path.stem}_actions.mp4"
    )
    csv_path = Path(args.csv) if args.csv else output.with_suffix(".csv")
    json_path = Path(args.json) if args.json else output.with_suffix(".json")
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
