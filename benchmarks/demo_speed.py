#!/usr/bin/env python3
"""The demo before and after the streaming engine, on the same input in one run.

Runs, with one loaded predictor (loading is not timed):
  * sequential: the old `run_demo` loop (every stage in turn, the span decoded twice),
  * engine, stages in turn (`EngineOptions(threads=False)`): one decode pass, no threads,
  * engine, stages in turn, --batch keyframes per detector and action-model call,
  * engine, threads (batch 1 and --batch keyframes per action-model call; the detector takes the
    keyframes already waiting, up to --batch, in one call).
For each: wall seconds, person detector and action model seconds, wall / (detector + action
model) (goal <= 1.05 on CPU: decode, tracking, drawing and encoding hidden behind the models) and
frames decoded per video frame (goal 1.0), counted at the decoder, and keyframes per detector
call. ``--rounds R`` repeats the rows interleaved and reports medians and per-round ratios.
Outputs: the video, AVA CSV and JSON (the same files for all runs; the engine's segments and
timeline are left out).

    .venv/bin/python benchmarks/demo_speed.py [--config CFG] [--input VIDEO] [--end S]
        [--detector hog] [--batch 4] [--rounds R] [--torch-threads N] [KEY VALUE ...]

With ``--detector-batching K`` it measures instead whether the person detector gains from
batching the K keyframes of one action-model batch: the input's first K keyframes (1 per
second) one call each, then in one call (torchvision: one forward over a list of K images;
HOG has no batched call, so K frames in K threads). The torchvision network has random
weights (the timing does not depend on them beyond the boxes kept).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import av
import numpy as np
import torch

from detection.config import load_config
from detection.data.video import VideoReader
from detection.engine.demo import run_demo
from detection.engine.predictor import ActionPredictor, StageTimes
from detection.engine.stream import EngineOptions, OutputPaths, StreamEngine
from detection.person import PersonDetections

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
    parser.add_argument(
        "--detector-batching",
        type=int,
        metavar="K",
        help="measure one detector call per keyframe against one call for K keyframes",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="--detector-batching: best of this many runs"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, interleaved (row 1, 2, 3, 4, 1, 2, ...); the table "
        "gives the median of each figure and the batch / batch-1 ratios of every round",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.detector_batching:
        detector_batching(args.input, args.detector_batching, repeats=args.repeats)
        return

    cfg = load_config(args.config, ["DEMO.DETECTOR", args.detector, *args.opts])
    predictor = ActionPredictor.from_config(cfg)
    counter = DecodeCounter()
    detector_calls = DetectorCalls(predictor)
    rows: dict[str, list[Row]] = {}

    def measure(name: str, job: Callable[[Path], tuple[StageTimes, int]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            counter.count = 0
            detector_calls.sizes.clear()
            start = time.perf_counter()
            times, frames = job(Path(tmp))
            wall = time.perf_counter() - start
        seconds = dict(times.seconds)
        models = sum(seconds.get(s, 0.0) for s in MODEL_STAGES)
        per_call = detector_calls.per_call()
        rows.setdefault(name, []).append(
            Row(wall, seconds, models, counter.count / frames, frames, per_call)
        )

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
    batched = f"engine, threads, batch {args.batch}"
    for _ in range(args.rounds):
        measure("sequential (old run_demo)", sequential)
        measure("engine, stages in turn", engine(EngineOptions(threads=False)))
        measure(
            f"engine, stages in turn, batch {args.batch}",
            engine(EngineOptions(threads=False, batch_size=args.batch)),
        )
        measure("engine, threads, batch 1", engine(EngineOptions()))
        measure(batched, engine(EngineOptions(batch_size=args.batch)))

    first = next(iter(rows.values()))[0]
    print(
        f"input {args.input} (end {args.end or 'of video'}), {first.frames} frames; config "
        f"{Path(args.config).name}, detector {args.detector}; torch threads "
        f"{torch.get_num_threads()}; {args.rounds} interleaved round(s), medians"
    )
    print(
        "\n| run | wall s | detect s | action model s | decode s | draw s | encode s | "
        "wall / models | decoded / frame | keyframes / detector call |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, runs in rows.items():
        wall = median(r.wall for r in runs)

        def stage(key: str, runs: list[Row] = runs) -> float:
            return median(r.seconds.get(key, 0.0) for r in runs)

        print(
            f"| {name} | {wall:.2f} | {stage('detect'):.2f} | {stage('action_model'):.2f} "
            f"| {stage('decode'):.2f} | {stage('draw'):.2f} | {stage('encode'):.2f} "
            f"| {median(r.wall / r.models for r in runs):.2f} "
            f"| {median(r.decoded for r in runs):.2f} | {median(r.per_call for r in runs):.2f} |"
        )
    print(
        "\ndecode/draw/encode of the threaded runs are summed over threads (they overlap the "
        "models); wall / models <= 1.05 is the goal."
    )
    print(f"\n{batched} / batch 1, per round (the machine may be shared: compare ratios):")
    for i, (one, many) in enumerate(
        zip(rows["engine, threads, batch 1"], rows[batched], strict=True), start=1
    ):
        print(
            f"  round {i}: wall {many.wall / one.wall:.2f}, detect "
            f"{many.seconds.get('detect', 0) / one.seconds.get('detect', 1):.2f}, action model "
            f"{many.seconds.get('action_model', 0) / one.seconds.get('action_model', 1):.2f}"
        )


@dataclass
class Row:
    """One measured run: wall s, stage s, detector + action model s, frames decoded per output
    frame, output frames, keyframes per detector call."""

    wall: float
    seconds: dict[str, float]
    models: float
    decoded: float
    frames: int
    per_call: float


class DetectorCalls:
    """Counts the keyframes of every `detect_batch` call of the predictor's detector (wraps
    the instance's method)."""

    def __init__(self, predictor: ActionPredictor) -> None:
        self.sizes: list[int] = []
        detector = predictor.detector
        if detector is None:
            return
        original = detector.detect_batch

        def counting(frames_rgb: Sequence[np.ndarray], **kwargs: Any) -> list[PersonDetections]:
            self.sizes.append(len(frames_rgb))
            return original(frames_rgb, **kwargs)

        detector.detect_batch = counting  # type: ignore[method-assign]

    def per_call(self) -> float:
        return sum(self.sizes) / len(self.sizes) if self.sizes else float("nan")


def _best_of(repeats: int, job: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        job()
        best = min(best, time.perf_counter() - start)
    return best


def detector_batching(video: str, k: int, repeats: int = 2) -> None:
    """Seconds per keyframe: K detector calls of one frame against one call of K frames
    (rows printed as they are measured)."""
    from torchvision.models import detection

    from detection.person.hog import HogPersonDetector

    with VideoReader(video) as reader:
        frames = reader.read_at_times([float(t) for t in range(k)])
    height, width = frames[0].shape[:2]
    print(
        f"{video}: {k} keyframes of {width}x{height}; torch threads {torch.get_num_threads()}; "
        f"best of {repeats}\n\n| detector | s / keyframe, one per call | s / keyframe, {k} per "
        f"call | batched / one |\n|---|---:|---:|---:|",
        flush=True,
    )

    def row(name: str, one: float, batched: float) -> None:
        print(f"| {name} | {one / k:.3f} | {batched / k:.3f} | {batched / one:.2f} |", flush=True)

    hog = HogPersonDetector()
    hog.detect(frames[0])  # warm-up
    one = _best_of(repeats, lambda: [hog.detect(f) for f in frames])
    with ThreadPoolExecutor(k) as pool:
        batched = _best_of(repeats, lambda: list(pool.map(hog.detect, frames)))
    row("OpenCV HOG (threads)", one, batched)

    images = [
        torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1).float() / 255 for f in frames
    ]
    torch.manual_seed(0)
    frcnn = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    with torch.inference_mode():
        frcnn([images[0]])  # warm-up
        one = _best_of(repeats, lambda: [frcnn([image]) for image in images])
        batched = _best_of(repeats, lambda: frcnn(images))
    row("torchvision Faster R-CNN R50-FPN (800 px)", one, batched)


if __name__ == "__main__":
    main()
