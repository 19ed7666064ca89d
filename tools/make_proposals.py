"""Person boxes for the keyframes of a set of videos, as an AVA predicted-box CSV (logic:
detection/apps/make_proposals.py)."""

from __future__ import annotations

import sys

from detection.apps.make_proposals import main

if __name__ == "__main__":
    sys.exit(main())
