#!/usr/bin/env python3
"""Detect people and their AVA actions in a video; write an annotated mp4, an AVA CSV and JSON.

Reads VIDEO (any format PyAV decodes), a config, optional action weights (MODEL.WEIGHTS) and the
person detector's files. Writes OUT.mp4 (H.264, same frame count and fps as the input span),
the AVA-format CSV (`tools/eval_ava.py` reads it) and a JSON of the top actions per person.
Without arguments it runs on the bundled clip data/demo/vtest_walking_6s.mp4 with the OpenCV
HOG person detector and an untrained SlowFast R50 (said on screen and in the video).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "AVA" / "SLOWFAST_32x2_R50.yaml"
DEFAULT_INPUT = ROOT / "data" / "demo" / "vtest_walking_6s.mp4"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="model/demo config YAML (default: %(default)s)",
    )
    parser.add_argument(
        "--input", default=str(DEFAULT_INPUT), help="input video (default: %(default)s)"
    )
    parser.add_argument(
        "--output", help="annotated mp4 to write (default: demo_output/<input stem>_actions.mp4)"
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from detection.apps.cli import run_tool
    from detection.engine.demo import run_demo_from_args

    run_tool(lambda: run_demo_from_args(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
