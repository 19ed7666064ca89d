"""Person-box AP of a person detector on AVA keyframes, with pycocotools' COCOeval (logic:
detection/apps/eval_person_ap.py)."""

from __future__ import annotations

import sys

from detection.apps.eval_person_ap import main

if __name__ == "__main__":
    sys.exit(main())
