"""Check an AVA-layout dataset and print a report (logic: detection/apps/check_dataset.py)."""

from __future__ import annotations

import sys

from detection.apps.check_dataset import main

if __name__ == "__main__":
    sys.exit(main())
