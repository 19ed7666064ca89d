"""Train an action detector, alone or under torchrun (logic: detection/apps/train_net.py)."""

from __future__ import annotations

import sys

from detection.apps.train_net import main

if __name__ == "__main__":
    sys.exit(main())
