"""OpenCV's HOG + linear SVM people detector (Dalal and Triggs, CVPR 2005).

Its weights ship inside opencv-python-headless 4.x, so this backend runs offline with a real
detector. It is far weaker than Faster R-CNN: use it for demos, not for evaluation.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torchvision.ops import nms

from detection.person.base import (
    PersonDetections,
    PersonDetector,
    PersonDetectorError,
    check_frame,
    make_detections,
)

_MAX_UPSCALE = 4.0


def hog_margin_to_score(margin: np.ndarray) -> np.ndarray:
    """Map HOG SVM margins to (0, 1) with sigmoid(2 * margin).

    The margin is not a probability; the factor 2 makes the shared default threshold
    (`DEMO.PERSON_SCORE_THRESH` 0.8, margin 0.69) keep the people of OpenCV's vtest.avi while
    dropping most background hits, which have margins below 0.5.
    """
    return (1.0 / (1.0 + np.exp(-2.0 * np.asarray(margin, dtype=np.float64)))).astype(np.float32)


class HogPersonDetector(PersonDetector):
    """HOG people detector on an upscaled grey frame, followed by non-maximum suppression.

    Args:
        score_thresh: minimum score (see `hog_margin_to_score`).
        min_short_side: frames whose short side is smaller are upscaled to it first. The HOG
            window is 64x128 pixels, so smaller people are missed; 864 (1.5x for a 768x576
            frame) finds the walkers of vtest.avi at about 0.4 s per frame on 2 cores, where
            no upscaling misses half of them. Upscaling is capped at 4x.
        win_stride: window step in pixels; (4, 4) finds a few more people at 4x the time.
        scale: pyramid scale step.
        nms_iou: IoU above which the lower-scoring of two boxes is dropped.
    """

    name = "hog"

    def __init__(
        self,
        score_thresh: float = 0.8,
        *,
        min_short_side: int = 864,
        win_stride: tuple[int, int] = (8, 8),
        scale: float = 1.05,
        nms_iou: float = 0.3,
    ):
        self.score_thresh = float(score_thresh)
        self.min_short_side = int(min_short_side)
        self.win_stride = tuple(win_stride)
        self.scale = float(scale)
        self.nms_iou = float(nms_iou)
        if not hasattr(cv2, "HOGDescriptor"):
            # OpenCV 5 moved HOG out of the main package (to opencv-contrib's xobjdetect).
            raise PersonDetectorError(
                f"the hog person detector needs cv2.HOGDescriptor, which OpenCV "
                f"{cv2.__version__} lacks; install opencv-python-headless<5 (as setup.cfg pins) "
                "or choose another detector (--detector)"
            )
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(
            np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32)
        )

    def detect(
        self,
        frame_rgb: np.ndarray,
        *,
        video_id: str | None = None,
        timestamp: float | None = None,
    ) -> PersonDetections:
        height, width = check_frame(frame_rgb)
        grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
        # Capped so that a degenerate frame (say 2x2000) cannot blow up memory.
        factor = min(_MAX_UPSCALE, max(1.0, self.min_short_side / min(height, width)))
        if factor > 1.0:
            grey = cv2.resize(
                grey,
                (round(width * factor), round(height * factor)),
                interpolation=cv2.INTER_LINEAR,
            )
        # Frames smaller than one detection window have nothing to find (and OpenCV asserts).
        if grey.shape[0] < 128 or grey.shape[1] < 64:
            return PersonDetections.empty()
        rects, margins = self._hog.detectMultiScale(
            grey, winStride=self.win_stride, padding=(8, 8), scale=self.scale
        )
        if len(rects) == 0:
            return PersonDetections.empty()
        boxes = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes /= factor
        scores = hog_margin_to_score(np.ravel(margins))
        keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), self.nms_iou).numpy()
        return make_detections(boxes[keep], scores[keep], height, width, self.score_thresh)
