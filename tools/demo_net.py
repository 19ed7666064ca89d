#!/usr/bin/env python3
"""The demo (`detection/apps/demo.py`, whose docstring is its --help) with the repository's
defaults: without arguments it runs on the bundled clip."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "AVA" / "SLOWFAST_32x2_R50.yaml"
DEFAULT_INPUT = ROOT / "data" / "demo" / "vtest_walking_6s.mp4"
DEFAULTS = """
Without arguments it runs on the bundled clip data/demo/vtest_walking_6s.mp4 with the OpenCV
HOG person detector and an untrained SlowFast R50 (said on screen and in the video).
"""


def main(argv: list[str] | None = None) -> int:
    from detection.apps import demo

    return demo.main(
        argv,
        default_config=str(DEFAULT_CONFIG),
        default_input=str(DEFAULT_INPUT),
        description=(demo.__doc__ or "") + DEFAULTS,
    )


if __name__ == "__main__":
    sys.exit(main())
