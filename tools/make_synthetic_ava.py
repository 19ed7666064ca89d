"""Generate a small AVA-format dataset (logic: detection/apps/make_synthetic_ava.py)."""

from __future__ import annotations

import sys

from detection.apps.make_synthetic_ava import main

if __name__ == "__main__":
    sys.exit(main())
