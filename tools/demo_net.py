#!/usr/bin/env python3
"""Detect people and their AVA actions in a video; write an annotated mp4, an AVA CSV and JSON.

Reads VIDEO (any format PyAV decodes), a config, optional action weights (MODEL.WEIGHTS) and the
person detector's files. Writes OUT.mp4 (H.264, same frame count and fps as the input span),
the AVA-format CSV (`tools/eval_ava.py` reads it) and a JSON of the top actions per person.
Without arguments it runs on the bundled clip data/demo/vtest_walking_6s.mp4 with the OpenCV
HOG person detector and an untrained SlowFast R50 (said on screen and in the video).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "AVA" / "SLOWFAST_32x2_R50.yaml"
DEFAULT_INPUT = ROOT / "data" / "demo" / "vtest_walking_6s.mp4"


def main(argv: list[str] | None = None) -> int:
    from detection.apps.demo import main as demo_main

    return demo_main(
        argv,
        default_config=str(DEFAULT_CONFIG),
        default_input=str(DEFAULT_INPUT),
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(main())
