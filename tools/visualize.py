"""Draw AVA ground truth and/or predictions on a video's keyframes (logic:
detection/apps/visualize.py)."""

from __future__ import annotations

import sys

from detection.apps.visualize import main

if __name__ == "__main__":
    sys.exit(main())
