"""AVA's facts, in one place (AVA v2.2, Gu et al., CVPR 2018; ActivityNet evaluation code).

Every AVA video is a 15-minute cut of a movie, from second 900 to 1800. Keyframes are whole
seconds 902..1798 (annotated at 1 Hz, leaving room for a clip around each), and PySlowFast's
frame layout samples the cut at 30 frames per second, so frame 0 is second 900.
"""

from __future__ import annotations

FPS = 30
"""Frames per second of the extracted-frame layout (``ffmpeg -r 30``)."""

VIDEO_START_SEC = 900
"""Movie second that is frame 0 of a 15-minute cut."""

VALID_SECONDS = range(902, 1799)
"""Keyframe seconds with annotations: 902..1798 inclusive."""

MAX_DETECTIONS_PER_FRAME = 50
"""The official ActivityNet evaluator keeps at most this many detections per frame (the highest
scoring, by a min-heap)."""

NUM_CLASSES = 80
"""Action classes of the full label map; 60 of them are evaluated."""
