"""The person-detector interface shared by every backend.

`check_frame` is re-exported from `detection.structures.boxes` for the backends.

Frame contract: every backend takes one frame as a uint8 RGB array [H, W, 3] (the layout
`detection.data.video.VideoReader` returns) and gives boxes in that frame's pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detection.errors import UserError
from detection.structures.boxes import check_frame as check_frame
from detection.structures.boxes import clip_boxes, nonempty_box_mask


class PersonDetectorError(UserError, RuntimeError):
    """A detector cannot be built or run because of a user-fixable problem (missing weights
    file, missing optional package, malformed box file); the message says what to do."""


@dataclass(frozen=True)
class PersonDetections:
    """Person boxes of one frame.

    boxes: float32 [N, 4], (x1, y1, x2, y2) in the frame's pixels, clipped to the frame,
        every box with positive width and height.
    scores: float32 [N], sorted in decreasing order.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.boxes.shape != (len(self.scores), 4):
            raise ValueError(
                f"boxes must be [N, 4] with N = len(scores) = {len(self.scores)}, "
                f"got {self.boxes.shape}"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> PersonDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))


def make_detections(
    boxes: np.ndarray, scores: np.ndarray, height: int, width: int, score_thresh: float
) -> PersonDetections:
    """Clip boxes [N, 4] to the frame, drop those scoring below `score_thresh` or left with no
    area (entirely outside the frame), and sort by decreasing score."""
    boxes = clip_boxes(boxes, height, width, convention="edges")
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = (scores >= score_thresh) & nonempty_box_mask(boxes)
    boxes, scores = boxes[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    return PersonDetections(boxes[order], scores[order])


class PersonDetector(ABC):
    """Frames in, person boxes and scores out (in the frame's original pixels)."""

    #: Backend name as used by `build_detector` and `DEMO.DETECTOR`.
    name: str = ""

    @abstractmethod
    def detect(
        self,
        frame_rgb: np.ndarray,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
    ) -> PersonDetections:
        """Person boxes in `frame_rgb` (uint8 RGB [H, W, 3]).

        `video_id` and `timestamp` (seconds) are needed only by backends that look boxes up
        (csv); image backends ignore them.
        """

    def detect_batch(
        self,
        frames_rgb: Sequence[np.ndarray],
        *,
        video_id: str | None = None,
        timestamps: Sequence[float | None] | None = None,
    ) -> list[PersonDetections]:
        """Persons on several frames (each uint8 RGB [H_i, W_i, 3], sizes may differ), one
        `PersonDetections` per frame in its own pixels, equal to one `detect` call per frame.
        `timestamps[i]` belongs to `frames_rgb[i]`. This default calls `detect` per frame;
        backends whose network takes a list of images override it with one forward pass."""
        timestamps = frame_timestamps(frames_rgb, timestamps)
        return [
            self.detect(frame, video_id=video_id, timestamp=t)
            for frame, t in zip(frames_rgb, timestamps, strict=True)
        ]


class BatchedPersonDetector(PersonDetector):
    """A detector whose network takes a list of images: `detect_batch` runs one forward pass per
    frame size (`same_size_groups`) and `detect` is a batch of one, so both give the same boxes.

    Subclasses set `score_thresh` and implement `_detect_same_size`; `video_id` and timestamps
    are not used.
    """

    score_thresh: float

    def detect(
        self,
        frame_rgb: np.ndarray,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
    ) -> PersonDetections:
        return self.detect_batch([frame_rgb])[0]

    def detect_batch(
        self,
        frames_rgb: Sequence[np.ndarray],
        *,
        video_id: str | None = None,
        timestamps: Sequence[float | None] | None = None,
    ) -> list[PersonDetections]:
        results: dict[int, PersonDetections] = {}
        for members in same_size_groups(frames_rgb):
            frames = [frames_rgb[i] for i in members]
            height, width = frames[0].shape[:2]
            for i, (boxes, scores) in zip(members, self._detect_same_size(frames), strict=True):
                results[i] = make_detections(boxes, scores, height, width, self.score_thresh)
        return [results[i] for i in range(len(frames_rgb))]

    @abstractmethod
    def _detect_same_size(
        self, frames_rgb: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(person boxes [N, 4] in the frame's pixels, scores [N]) of each frame, all frames of
        one [H, W], in one forward pass; `make_detections` clips, thresholds and sorts them."""


def frame_timestamps(
    frames_rgb: Sequence[np.ndarray], timestamps: Sequence[float | None] | None
) -> list[float | None]:
    """`timestamps` as a list of one entry per frame (all None when not given)."""
    if timestamps is None:
        return [None] * len(frames_rgb)
    if len(timestamps) != len(frames_rgb):
        raise ValueError(f"{len(frames_rgb)} frames but {len(timestamps)} timestamps")
    return list(timestamps)


def same_size_groups(frames_rgb: Sequence[np.ndarray]) -> list[list[int]]:
    """Indices of the frames grouped by [H, W] (each frame checked as by `check_frame`), in
    order of first appearance. Batched networks pad a batch to its largest image, so frames of
    one size per forward pass keep the results equal to one frame per pass."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, frame in enumerate(frames_rgb):
        groups.setdefault(check_frame(frame), []).append(index)
    return list(groups.values())
