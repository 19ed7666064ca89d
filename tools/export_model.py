"""Export the action detector as ONNX and OpenVINO IR (logic: detection/apps/export_model.py)."""

from __future__ import annotations

import sys

from detection.apps.export_model import main

if __name__ == "__main__":
    sys.exit(main())
