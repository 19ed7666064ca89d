"""Person detectors behind one interface: `PersonDetector.detect(frame_rgb) -> PersonDetections`
(uint8 RGB [H, W, 3] in, boxes in the frame's pixels out). Backends: OpenCV HOG, torchvision
Faster R-CNN, Detectron2 (optional extra) and precomputed AVA CSV boxes."""

from detection.person.base import (
    PersonDetections,
    PersonDetector,
    PersonDetectorError,
    check_frame,
    make_detections,
)
from detection.person.build import DETECTORS, build_detector, build_detector_from_cfg

__all__ = [
    "DETECTORS",
    "PersonDetections",
    "PersonDetector",
    "PersonDetectorError",
    "build_detector",
    "build_detector_from_cfg",
    "check_frame",
    "make_detections",
]
