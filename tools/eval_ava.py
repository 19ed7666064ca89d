"""AVA frame-mAP of a detections CSV, under the official or PySlowFast's protocol (logic:
detection/apps/eval_ava.py)."""

from __future__ import annotations

from detection.apps.eval_ava import main

if __name__ == "__main__":
    main()
