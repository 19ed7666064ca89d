"""The person-detector interface shared by every backend.

Frame contract: every backend takes one frame as a uint8 RGB array [H, W, 3] (the layout
`detection.data.video.VideoReader` returns) and gives boxes in that frame's pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class PersonDetectorError(RuntimeError):
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


def check_frame(frame_rgb: np.ndarray) -> tuple[int, int]:
    """Validate the frame contract; returns (height, width)."""
    if not isinstance(frame_rgb, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(frame_rgb).__name__}")
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8 RGB [H, W, 3], got {frame_rgb.dtype} {list(frame_rgb.shape)}"
        )
    height, width = frame_rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"frame is empty: {list(frame_rgb.shape)}")
    return height, width


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip float boxes [N, 4] (x1, y1, x2, y2) to [0, width] x [0, height]."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes


def make_detections(
    boxes: np.ndarray, scores: np.ndarray, height: int, width: int, score_thresh: float
) -> PersonDetections:
    """Clip boxes [N, 4] to the frame, drop those scoring below `score_thresh` or left with no
    area (entirely outside the frame), and sort by decreasing score."""
    boxes = clip_boxes(boxes, height, width)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = (
        (scores >= score_thresh)
        & (boxes[:, 2] > boxes[:, 0])
        & (boxes[:, 3] > boxes[:, 1])
        & np.isfinite(boxes).all(axis=1)
    )
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
