"""Test saved weights on the test split, alone or under torchrun (logic:
detection/apps/test_net.py)."""

from __future__ import annotations

import sys

from detection.apps.test_net import main

if __name__ == "__main__":
    sys.exit(main())
