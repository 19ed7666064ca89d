"""Build a person detector by name or from the config's DEMO.* keys."""

from __future__ import annotations

from typing import Any

from detection.person.base import PersonDetector, PersonDetectorError
from detection.utils.device import resolve_device

DETECTORS = ("hog", "torchvision", "detectron2", "csv")


def build_detector(name: str, **options: Any) -> PersonDetector:
    """A detector backend by name, with its constructor's keyword arguments:

    - ``hog``: `HogPersonDetector(score_thresh=..., min_short_side=..., ...)`
    - ``torchvision``: `TorchvisionPersonDetector(weights=PATH, score_thresh=..., device=...)`
    - ``detectron2``: `Detectron2PersonDetector(config=ZOO_NAME_OR_YAML, weights=PATH, ...)`
    - ``csv``: `CsvPersonDetector(path=CSV, score_thresh=...)`

    Backends are imported here, on demand, so that detectron2 is needed only when asked for.
    """
    if name == "hog":
        from detection.person.hog import HogPersonDetector

        return HogPersonDetector(**options)
    if name == "torchvision":
        from detection.person.torchvision_rcnn import TorchvisionPersonDetector

        return TorchvisionPersonDetector(**options)
    if name == "detectron2":
        from detection.person.detectron2_rcnn import Detectron2PersonDetector

        return Detectron2PersonDetector(**options)
    if name == "csv":
        from detection.person.csv_boxes import CsvPersonDetector

        return CsvPersonDetector(**options)
    raise PersonDetectorError(f"unknown person detector {name!r}; expected one of {DETECTORS}")


def _require(value: str, key: str, backend: str) -> str:
    if not value:
        raise PersonDetectorError(f"DEMO.DETECTOR {backend!r} needs {key} (a local file path)")
    return value


def build_detector_from_cfg(cfg, device: str | None = None) -> PersonDetector:
    """The detector that ``cfg.DEMO.DETECTOR`` names, configured from ``cfg.DEMO.*``.

    `device` ("cpu", "cuda", ...) is used by the network backends; None means ``cfg.DEVICE``
    ("auto": CUDA when available).
    """
    demo = cfg.DEMO
    name = demo.DETECTOR
    thresh = demo.PERSON_SCORE_THRESH
    device = device or str(resolve_device(cfg.DEVICE))
    if name == "hog":
        return build_detector("hog", score_thresh=thresh)
    if name == "torchvision":
        weights = _require(demo.TORCHVISION_WEIGHTS, "DEMO.TORCHVISION_WEIGHTS", name)
        return build_detector(name, weights=weights, score_thresh=thresh, device=device)
    if name == "detectron2":
        weights = _require(demo.DETECTRON2_WEIGHTS, "DEMO.DETECTRON2_WEIGHTS", name)
        return build_detector(
            name, config=demo.DETECTRON2_CFG, weights=weights, score_thresh=thresh, device=device
        )
    if name == "csv":
        path = _require(demo.PREDICTED_BOXES_CSV, "DEMO.PREDICTED_BOXES_CSV", name)
        return build_detector(name, path=path, score_thresh=thresh)
    raise PersonDetectorError(
        f"unknown DEMO.DETECTOR {name!r}; expected one of {', '.join(DETECTORS)}"
    )
