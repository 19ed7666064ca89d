"""Precomputed person boxes from an AVA-format CSV (what AVA evaluation uses).

Rows are ``video_id, timestamp, x1, y1, x2, y2, action_id[, score]`` with whole-second
timestamps (``0902``), normalized coordinates, an action id that may be empty or -1, and an
optional score (1.0 when absent); they are read and validated by
`detection.ava.csv_io.read_ava_csv` (kind "boxes"). A person box repeated on several
rows (one per action) is one box, with the highest score of its rows.

Lookup rule: a video id that the file never names is an error (almost always a wrong file or a
typo); a known video at a second with no rows, or at a time that is not a whole second, has
zero persons (an empty result).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from detection.ava.csv_io import BOX_COLUMNS, read_ava_csv
from detection.person.base import (
    PersonDetections,
    PersonDetector,
    PersonDetectorError,
    check_frame,
    make_detections,
)
from detection.structures.boxes import denormalize_boxes

# A query time this close to a whole second is that second (float keyframe times).
_WHOLE_SECOND_EPS = 1e-3


class CsvPersonDetector(PersonDetector):
    """Person boxes looked up by (video_id, timestamp) in an AVA-format CSV.

    Args:
        path: the CSV file (read once, here; a malformed row raises
            `detection.ava.csv_io.AvaCsvError` naming the file and line).
        score_thresh: minimum score; rows without a score count as 1.0.
    """

    name = "csv"

    def __init__(self, path: str | Path, score_thresh: float = 0.8):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"person box CSV {self.path} not found")
        self.score_thresh = float(score_thresh)
        rows = read_ava_csv(self.path, kind="boxes")
        rows["score"] = rows["score"].fillna(1.0)
        per_box = rows.groupby(["video_id", "timestamp", *BOX_COLUMNS], sort=False)["score"].max()
        # (video_id, second) -> (normalized boxes [N, 4], scores [N])
        self._frames: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        for key, group in per_box.reset_index().groupby(["video_id", "timestamp"], sort=False):
            # pandas-stubs types a group key as Hashable; read_ava_csv gives these dtypes.
            video_id, second = cast(tuple[str, np.int64], key)
            self._frames[(video_id, int(second))] = (
                group[BOX_COLUMNS].to_numpy(np.float32),
                group["score"].to_numpy(np.float32),
            )
        self._videos = set(rows["video_id"])

    @property
    def video_ids(self) -> set[str]:
        """Every video id the file names."""
        return set(self._videos)

    def detect(
        self,
        frame_rgb: np.ndarray,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
    ) -> PersonDetections:
        """Boxes of `video_id` at `timestamp` (AVA seconds), scaled to `frame_rgb`'s size."""
        height, width = check_frame(frame_rgb)
        if video_id is None or timestamp is None:
            raise ValueError("the csv person detector needs video_id and timestamp")
        if video_id not in self._videos:
            known = ", ".join(sorted(self._videos)[:5])
            raise PersonDetectorError(
                f"video {video_id!r} has no rows in {self.path} "
                f"({len(self._videos)} videos there, e.g. {known})"
            )
        second = round(float(timestamp))
        found = self._frames.get((video_id, second))
        if found is None or abs(float(timestamp) - second) > _WHOLE_SECOND_EPS:
            return PersonDetections.empty()
        boxes, scores = found
        return make_detections(
            denormalize_boxes(boxes, height, width), scores, height, width, self.score_thresh
        )
