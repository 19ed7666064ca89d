"""Extract PySlowFast's JPEG frame layout (frames/ + frame_lists/) from videos, without ffmpeg.

Reads a folder of videos; writes OUTPUT/frames/{id}/{id}_%06d.jpg and
OUTPUT/frame_lists/{train,val}.csv. See --help and detection/apps/extract_frames.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detection.apps.extract_frames import main  # noqa: E402

if __name__ == "__main__":
    main()
