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

Outputs are checked before any work (none may be the input, the config or a file it names, or
another output; their folders must be writable) and written as one set: all replaced at the
end or none, so a failed or killed run leaves the previous results (the next run removes its
.partial+* temporaries). The output video keeps the input's frame times (variable frame rate
too).

Many videos on many processes or machines: under
  torchrun --nproc_per_node N tools/demo_net.py --input FOLDER --output OUTDIR
each process takes whole videos (every N-th of the sorted list; one GPU each), a process that
fails loses only the video it was on, a rerun skips videos whose outputs are complete, and
rank 0 prints the summary of all videos.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from tqdm import tqdm
from yacs.config import CfgNode

from detection.apps.cli import ToolArgumentParser, run_tool
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
from detection.utils.paths import OutputPathError, check_outputs, check_writable_dir, same_file

DEFAULT_OUTPUT_DIR = Path("demo_output")


def build_parser(
    *,
    default_config: str | None = None,
    default_input: str | None = None,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The demo's arguments. `--config` and `--input` are required unless a default is given
    (tools/demo_net.py gives the repository's R50 config and bundled clip)."""
    parser = ToolArgumentParser(
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
        "--start",
        type=_seconds("--start"),
        default=0.0,
        help="first second of the span (default: 0)",
    )
    parser.add_argument(
        "--end",
        type=_seconds("--end"),
        help="end of the span in seconds, after --start (default: end of video)",
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


def _seconds(option: str):
    """argparse type of a time in the video: a finite number of seconds >= 0 (``nan``, ``inf``
    and negative times are refused in one line)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a time in seconds (a finite number >= 0)"
            )
        return value

    parse.__name__ = option  # argparse names the type in its messages
    return parse


def _check_span(args: argparse.Namespace) -> None:
    if args.end is not None and args.end <= args.start:
        raise DemoError(
            f"--end {args.end:g} is not after --start {args.start:g}: the span would be empty"
        )


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
    outputs into --output (a folder), skipping videos whose outputs all exist. Under torchrun
    each process takes every WORLD_SIZE-th video of the sorted list, and rank 0 prints the
    summary of all.

    Everything is checked before the models load: the span, the config, the inputs, and the
    outputs (none may be an input or another output; their folders must be writable)."""
    _check_span(args)
    opts = list(args.opts)
    if args.detector:
        opts += ["DEMO.DETECTOR", args.detector]
    cfg = load_config(args.config, opts)
    inputs = expand_sources([args.input])
    many = len(inputs) > 1 or Path(args.input).is_dir()
    output_dir = (Path(args.output) if args.output else DEFAULT_OUTPUT_DIR) if many else None
    plans = [(spec, _outputs_for(args, spec, output_dir)) for spec in inputs]
    read = _files_read(args, cfg, inputs)
    if many:
        assert output_dir is not None
        _check_many_outputs(read, plans, output_dir)
    else:
        _check_one_output(read, args, plans[0][1])
    if not cfg.MODEL.WEIGHTS:
        print(
            f"note: no MODEL.WEIGHTS given, {UNTRAINED_NOTICE}. "
            "README shows how to use the official AVA checkpoint."
        )
    if args.sequential:
        return _run_sequential(cfg, args, inputs, plans[0][1])
    rank, world = _rank_and_world() if many else (0, 1)
    mine = plans[rank::world]
    todo = [(spec, out) for spec, out in mine if not (many and _complete(out))]
    if many and len(todo) < len(mine):
        who = f"rank {rank}: " if world > 1 else ""
        print(f"{who}skipping {len(mine) - len(todo)} of {len(mine)} videos: outputs complete")
    if world > 1:
        _join_process_group()
    results = _run_engine(cfg, args, todo, many=many, rank=rank)
    if many:
        _print_summary(_gather_rows([_summary_row(r) for r in results], world), rank)
        return results
    return results[0]


def _run_engine(
    cfg: CfgNode,
    args: argparse.Namespace,
    todo: list[tuple[str, OutputPaths]],
    *,
    many: bool,
    rank: int,
) -> list[EngineResult]:
    if not todo:
        return []
    # The first source is opened before the models load, so a bad input is reported at once.
    first = open_source(todo[0][0], timeout_s=args.live_timeout)
    engine = StreamEngine(
        cfg,
        ActionPredictor.from_config(cfg),
        EngineOptions(batch_size=args.batch_size, max_seconds=args.max_seconds),
    )
    results = []
    show = not args.quiet and rank == 0
    overall = tqdm(total=len(todo), desc="videos", unit="video", disable=not many or not show)
    with overall:
        for number, (spec, outputs) in enumerate(todo):
            source = first if number == 0 else open_source(spec, timeout_s=args.live_timeout)
            try:
                result = engine.run(
                    source,
                    outputs,
                    start_s=args.start,
                    end_s=args.end,
                    ava_second_offset=args.ava_second_offset,
                    show_progress=show,
                )
            finally:
                source.close()
            results.append(result)
            overall.update()
            if not many:
                _print_one(result)
    return results


# Files a run reads besides the input: writing any of them would destroy it.
_CONFIG_FILES = (
    "MODEL.WEIGHTS",
    "DEMO.LABEL_FILE_PATH",
    "DEMO.PREDICTED_BOXES_CSV",
    "DEMO.TORCHVISION_WEIGHTS",
    "DEMO.DETECTRON2_WEIGHTS",
)


def _files_read(args: argparse.Namespace, cfg: CfgNode, inputs: list[str]) -> dict[str, str]:
    read = {"--config": str(args.config)}
    for key in _CONFIG_FILES:
        section, name = key.split(".")
        value = cfg[section][name]
        if value:
            read[key] = str(value)
    if not is_live(args.input):
        read["--input"] = str(args.input)
    for spec in inputs:
        if not is_live(spec) and spec != args.input:
            read[f"--input video {Path(spec).name}"] = spec
    return read


def _check_one_output(read: dict[str, str], args: argparse.Namespace, outputs: OutputPaths) -> None:
    given = {
        "video": args.output,
        "csv": args.csv,
        "json": args.json,
        "segments_csv": args.segments,
        "timeline": args.timeline,
    }
    option = {"video": "--output", "csv": "--csv", "json": "--json", "timeline": "--timeline"}
    option |= {"segments_csv": "--segments", "segments_json": "--segments"}
    named = {}
    for key, path in vars(outputs).items():
        if path is None or (args.sequential and key not in ("video", "csv", "json")):
            continue
        if key == "segments_json":
            name = "the segments JSON (beside --segments)" if args.segments else None
        else:
            name = option[key] if given.get(key) else None
        named[name or f"{option[key]} (default)"] = path
    check_outputs(read, named)


def _check_many_outputs(
    read: dict[str, str], plans: list[tuple[str, OutputPaths]], output_dir: Path
) -> None:
    """Folder mode: the output folder is writable, no output of one video is another's or an
    input (two videos of one stem, a.mp4 and a.mkv, would write the same files). Compared by
    resolved name and, for existing files, by inode, in one pass over all outputs."""
    check_writable_dir(output_dir, f"--output folder {output_dir}")
    inputs: dict[object, str] = {}
    for name, read_path in read.items():
        inputs[os.path.realpath(read_path)] = name
        if os.path.exists(read_path):
            st = os.stat(read_path)
            inputs[(st.st_dev, st.st_ino)] = name
    seen: dict[str, str] = {}
    for spec, outputs in plans:
        for path in outputs.files():
            real = os.path.realpath(path)
            keys: list[object] = [real]
            if path.exists():
                st = path.stat()
                keys.append((st.st_dev, st.st_ino))
            hit = next((inputs[k] for k in keys if k in inputs), None)
            if hit is not None:
                raise OutputPathError(
                    f"output {path} of {spec} is the input {hit} ({read[hit]}): "
                    "choose another --output folder"
                )
            if real in seen and not same_file(seen[real], spec):
                raise OutputPathError(
                    f"{seen[real]} and {spec} would both write {path}: videos of one name "
                    "need separate runs or folders"
                )
            seen[real] = spec


def _rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes under torchrun; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


# A rank that finishes its videos early waits this long at the summary for the others.
_SUMMARY_WAIT_MINUTES = 7 * 24 * 60.0


def _join_process_group() -> None:
    import torch

    from detection.engine import distributed

    # gloo whatever the device: the ranks only exchange their summary rows.
    distributed.init_distributed(torch.device("cpu"), timeout_minutes=_SUMMARY_WAIT_MINUTES)


def _gather_rows(rows: list[dict], world: int) -> list[dict]:
    """Every rank's summary rows (rank 0's first) when run under torchrun; `rows` otherwise."""
    if world == 1:
        return rows
    from detection.engine import distributed

    gathered = distributed.all_gather_objects(rows)
    distributed.shutdown_distributed(wait_for_others=False)
    return [row for part in gathered for row in part]


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


def _summary_row(result: EngineResult) -> dict:
    return {
        "video": Path(result.source).name,
        "seconds": result.span_s[1] - result.span_s[0],
        "keyframes": len(result.results),
        "persons": result.num_tracks,
        "frames": result.frames_written,
        "wall_s": result.wall_s,
    }


def _print_summary(rows: list[dict], rank: int = 0) -> None:
    """The table of the videos run (all ranks' under torchrun), printed by rank 0."""
    if rank != 0:
        return
    print("\n| video | seconds | keyframes | persons | frames | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['video']} | {r['seconds']:.1f} | {r['keyframes']} | {r['persons']} | "
            f"{r['frames']} | {r['wall_s']:.1f} |"
        )
    total = {k: sum(r[k] for r in rows) for k in ("seconds", "keyframes", "persons", "frames")}
    print(
        f"| **{len(rows)} videos** | {total['seconds'] / 3600:.3f} h | {total['keyframes']} | "
        f"{total['persons']} | {total['frames']} | {sum(r['wall_s'] for r in rows):.1f} |"
    )


def _run_sequential(
    cfg: CfgNode, args: argparse.Namespace, inputs: list[str], outputs: OutputPaths
) -> DemoResult:
    """The demo before the engine: every stage in turn, the span decoded twice (kept to compare
    with; one file only, no tracks or segments)."""
    if len(inputs) != 1 or is_live(inputs[0]):
        raise DemoError("--sequential takes one video file")
    input_path = Path(inputs[0])
    output, csv_path, json_path = outputs.video, outputs.csv, outputs.json
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
