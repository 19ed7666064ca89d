"""AVA's formats and facts, the bottom layer: it imports nothing else of the package but
`detection.errors` and `detection.utils`.

- `csv_io`: the official CSV files (ground truth, detections, person boxes, excluded timestamps),
  one dialect for every reader and writer (its docstring);
- `labelmap`: label maps in both pbtxt dialects;
- `packaged`: AVA v2.2's label maps shipped as package data;
- `constants`: 30 fps layout, second 900, keyframes 902-1798, the evaluator's 50-per-frame cap.
"""

from .constants import FPS, MAX_DETECTIONS_PER_FRAME, VALID_SECONDS, VIDEO_START_SEC
from .csv_io import (
    AvaColumns,
    AvaCsvError,
    iter_ava_csv,
    read_ava_columns,
    read_ava_csv,
    read_ava_text,
    read_excluded_timestamps,
    write_ava_csv,
    write_detections,
    write_excluded_timestamps,
)
from .labelmap import LabelMap, LabelMapError, read_labelmap
from .packaged import ALL_CLASSES, EVALUATED_CLASSES, packaged_labelmap_path

__all__ = [
    "ALL_CLASSES",
    "EVALUATED_CLASSES",
    "FPS",
    "MAX_DETECTIONS_PER_FRAME",
    "VALID_SECONDS",
    "VIDEO_START_SEC",
    "AvaColumns",
    "AvaCsvError",
    "LabelMap",
    "LabelMapError",
    "iter_ava_csv",
    "packaged_labelmap_path",
    "read_ava_columns",
    "read_ava_csv",
    "read_ava_text",
    "read_excluded_timestamps",
    "read_labelmap",
    "write_ava_csv",
    "write_detections",
    "write_excluded_timestamps",
]
