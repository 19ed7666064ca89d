#!/usr/bin/env python3
"""Where the demo's wall time goes: seconds per second of video, split into decode, person
detection, action model, encode and the rest, on the bundled clip (or --input).

Pipeline overhead = everything but the two models' inference (loading them counts as overhead);
the goal is at most 20% of wall time.

    .venv/bin/python benchmarks/demo_speed.py [--config CFG] [--input VIDEO] [--detector hog]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from detection.config import load_config
from detection.engine.demo import run_demo
from detection.engine.predictor import ActionPredictor

ROOT = Path(__file__).resolve().parents[1]

MODEL_STAGES = ("detect", "action_model")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(ROOT / "configs/AVA/SLOWFAST_32x2_R50.yaml"))
    parser.add_argument("--input", default=str(ROOT / "data/demo/vtest_walking_6s.mp4"))
    parser.add_argument("--detector", default="hog")
    parser.add_argument("--end", type=float, help="stop after this many seconds of video")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    cfg = load_config(args.config, ["DEMO.DETECTOR", args.detector, *args.opts])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        predictor = ActionPredictor.from_config(cfg)
        load_s = time.perf_counter() - start
        result = run_demo(
            cfg,
            args.input,
            Path(tmp) / "out.mp4",
            output_csv=Path(tmp) / "out.csv",
            output_json=Path(tmp) / "out.json",
            end_s=args.end,
            show_progress=False,
            predictor=predictor,
        )
        wall = time.perf_counter() - start
    video_s = result.span_s[1] - result.span_s[0]
    stages = dict(result.times.seconds)
    stages["load (models, label map)"] = load_s
    stages["other (setup)"] = wall - sum(stages.values())

    print(
        f"input {args.input}: {video_s:.1f} s of video, {result.frames_written} frames, "
        f"{len(result.predictions)} keyframes; torch threads {torch.get_num_threads()}; "
        f"config {Path(args.config).name}, detector {args.detector}"
    )
    print("\n| stage | seconds | s per s of video | share of wall |\n|---|---:|---:|---:|")
    for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"| {stage} | {seconds:.2f} | {seconds / video_s:.3f} | {seconds / wall:.1%} |")
    print(f"| **total** | {wall:.2f} | {wall / video_s:.3f} | 100% |")
    overhead = wall - sum(stages.get(s, 0.0) for s in MODEL_STAGES)
    print(
        f"\npipeline overhead (all but person detection and action model): {overhead:.2f} s = "
        f"{overhead / wall:.1%} of wall time (goal <= 20%)"
    )


if __name__ == "__main__":
    main()
