"""Annotation import: CVAT for video 1.1 XML, VIA 3 video JSON or a plain CSV -> a dataset in
the AVA layout that `detection.data` reads.

- `common`: samples, tracks, the video catalog (PyAV) and the import report;
- `cvat`, `via`, `plain_csv`: one reader per format, each giving tracks of boxes over time;
- `keyframes`: which box of each person goes to which whole-second keyframe;
- `dataset_writer`: the AVA layout, written atomically;
- `build`: one import from files to dataset (`import_annotations`).
"""

from .build import FORMATS, ImportOptions, ImportResult, import_annotations
from .common import ImportAnnotationError, ImportReport

__all__ = [
    "FORMATS",
    "ImportAnnotationError",
    "ImportOptions",
    "ImportReport",
    "ImportResult",
    "import_annotations",
]
