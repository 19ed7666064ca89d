#!/usr/bin/env python3
"""The demo before and after the streaming engine, on the same input in one run.

Runs, with one loaded predictor (loading is not timed):
  * sequential: the old `run_demo` loop (every stage in turn, the span decoded twice),
  * engine, stages in turn (`EngineOptions(threads=False)`): one decode pass, no threads,
  * engine, threads (batch 1 and --batch keyframes per action-model call).
For each: wall seconds, person detector and action model seconds, wall / (detector + action
model) (goal <= 1.05 on CPU: decode, tracking, drawing and encoding hidden behind the models) and
frames decoded per video frame (goal 1.0), counted at the decoder. Outputs: the video, AVA CSV
and JSON (the same files for all runs; the engine's segments and timeline are left out).

    .venv/bin/python benchmarks/demo_speed.py [--config CFG] [--input VIDEO] [--end S]
        [--detector hog] [--batch 4] [--torch-threads N] [KEY VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import torch

from detection.config import load_config
from detection.data.video import VideoReader
from detection.engine.demo import run_demo
from detection.engine.predictor import ActionPredictor, StageTimes
from detection.engine.stream import EngineOptions, OutputPaths, StreamEngine

ROOT = Path(__file__).resolve().parents[1]
MODEL_STAGES = ("detect", "action_model")


class DecodeCounter:
    """Counts the frames every `VideoReader` decodes (wraps its one decoding generator)."""

    def __init__(self) -> None:
        self.count = 0
        original = VideoReader._decode_from

        def counting(reader: VideoReader, time_s: float) -> Iterator[av.VideoFrame]:
            for frame in original(reader, time_s):
                self.count += 1
                yield frame

        VideoReader._decode_from = counting  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs/AVA/SLOWFAST_32x2_R50.yaml"))
    parser.add_argument("--input", default=str(ROOT / "data/demo/vtest_walking_6s.mp4"))
    parser.add_argument("--detector", default="hog")
    parser.add_argument("--end", type=float, help="stop after this many seconds of video")
    parser.add_argument("--batch", type=int, default=4, help="keyframes per batch (threaded run)")
    parser.add_argument(
        "--torch-threads", type=int, help="torch intra-op threads (default: torch's choice)"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    cfg = load_config(args.config, ["DEMO.DETECTOR", args.detector, *args.opts])
    predictor = ActionPredictor.from_config(cfg)
    counter = DecodeCounter()
    rows = []

    def measure(name: str, job: Callable[[Path], tuple[StageTimes, int]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            counter.count = 0
            start = time.perf_counter()
            times, frames = job(Path(tmp))
            wall = time.perf_counter() - start
        seconds = dict(times.seconds)
        models = sum(seconds.get(s, 0.0) for s in MODEL_STAGES)
        rows.append((name, wall, seconds, models, counter.count / frames, frames))

    def sequential(tmp: Path) -> tuple[StageTimes, int]:
        result = run_demo(
            cfg,
            args.input,
            tmp / "o.mp4",
            output_csv=tmp / "o.csv",
            output_json=tmp / "o.json",
            end_s=args.end,
            show_progress=False,
            predictor=predictor,
        )
        return result.times, result.frames_written

    def engine(options: EngineOptions) -> Callable[[Path], tuple[StageTimes, int]]:
        def job(tmp: Path) -> tuple[StageTimes, int]:
            outputs = OutputPaths(tmp / "o.mp4", csv=tmp / "o.csv", json=tmp / "o.json")
            result = StreamEngine(cfg, predictor, options).run(
                args.input, outputs, end_s=args.end, show_progress=False
            )
            return result.times, result.frames_written

        return job

    # Warm-up (first calls initialise oneDNN, OpenCV and the encoder): not in the table.
    with tempfile.TemporaryDirectory() as tmp:
        warm = OutputPaths(Path(tmp) / "o.mp4")
        StreamEngine(cfg, predictor).run(args.input, warm, end_s=1.0, show_progress=False)
    measure("sequential (old run_demo)", sequential)
    measure("engine, stages in turn", engine(EngineOptions(threads=False)))
    measure("engine, threads, batch 1", engine(EngineOptions()))
    measure(f"engine, threads, batch {args.batch}", engine(EngineOptions(batch_size=args.batch)))

    print(
        f"input {args.input} (end {args.end or 'of video'}), {rows[0][5]} frames; config "
        f"{Path(args.config).name}, detector {args.detector}; torch threads "
        f"{torch.get_num_threads()}"
    )
    print(
        "\n| run | wall s | detect s | action model s | decode s | draw s | encode s | "
        "wall / models | decoded / frame |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, wall, s, models, decoded, _ in rows:
        print(
            f"| {name} | {wall:.2f} | {s.get('detect', 0):.2f} | {s.get('action_model', 0):.2f} "
            f"| {s.get('decode', 0):.2f} | {s.get('draw', 0):.2f} | {s.get('encode', 0):.2f} "
            f"| {wall / models:.2f} | {decoded:.2f} |"
        )
    print(
        "\ndecode/draw/encode of the threaded runs are summed over threads (they overlap the "
        "models); wall / models <= 1.05 is the goal."
    )


if __name__ == "__main__":
    main()
