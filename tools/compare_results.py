"""Two AVA results side by side: per-class AP, the difference, and mAP (logic:
detection/apps/compare_results.py)."""

from __future__ import annotations

import sys

from detection.apps.compare_results import main

if __name__ == "__main__":
    sys.exit(main())
