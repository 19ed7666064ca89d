#!/usr/bin/env python3
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
