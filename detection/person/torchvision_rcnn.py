"""torchvision's COCO Faster R-CNN (``fasterrcnn_resnet50_fpn`` or ``_v2``) from a local file.

The network is built without weights and the state dict is read with
``torch.load(weights_only=True)``, which refuses pickled code; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import (
    FasterRCNN_ResNet50_FPN_V2_Weights,
    FasterRCNN_ResNet50_FPN_Weights,
    fasterrcnn_resnet50_fpn,
    fasterrcnn_resnet50_fpn_v2,
)

from detection.person.base import BatchedPersonDetector, PersonDetectorError

# COCO "person" in torchvision's 91-class label space (0 is background).
_PERSON_LABEL = 1

_ARCHS = {
    "fasterrcnn_resnet50_fpn": (fasterrcnn_resnet50_fpn, FasterRCNN_ResNet50_FPN_Weights.DEFAULT),
    "fasterrcnn_resnet50_fpn_v2": (
        fasterrcnn_resnet50_fpn_v2,
        FasterRCNN_ResNet50_FPN_V2_Weights.DEFAULT,
    ),
}
# A key only each architecture's box head has (v1: two FC layers; v2: conv layers then FC).
_ARCH_MARKER_KEYS = {
    "fasterrcnn_resnet50_fpn": "roi_heads.box_head.fc6.weight",
    "fasterrcnn_resnet50_fpn_v2": "roi_heads.box_head.0.0.weight",
}


def official_weights_help() -> str:
    """Where the official COCO weights files are published (for error messages)."""
    return "; ".join(f"{arch}: {weights.url}" for arch, (_, weights) in _ARCHS.items())


def _infer_arch(state_dict: dict[str, torch.Tensor], path: Path) -> str:
    for arch, key in _ARCH_MARKER_KEYS.items():
        if key in state_dict:
            return arch
    raise PersonDetectorError(
        f"{path} is not a fasterrcnn_resnet50_fpn(_v2) state dict (no "
        f"{' or '.join(_ARCH_MARKER_KEYS.values())}); official files: {official_weights_help()}"
    )


def load_torchvision_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (tensors only); the file may also be a checkpoint dict with a
    "model" entry."""
    path = Path(path)
    if not path.is_file():
        raise PersonDetectorError(
            f"torchvision detector weights {path} not found (DEMO.TORCHVISION_WEIGHTS); "
            f"download an official file and pass its path: {official_weights_help()}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise PersonDetectorError(f"cannot load {path} as a torch state dict: {e}") from e
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise PersonDetectorError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


class TorchvisionPersonDetector(BatchedPersonDetector):
    """COCO Faster R-CNN person detector (label 1) from torchvision.

    Args:
        weights: local state-dict file of ``fasterrcnn_resnet50_fpn`` or ``_v2``; the
            architecture is told from its keys.
        score_thresh: minimum person score.
        device: torch device for inference.
        min_size, max_size: torchvision's test-time resize (800, 1333 as trained); the
            returned boxes are in the input frame's pixels whatever the resize.
    """

    name = "torchvision"

    def __init__(
        self,
        weights: str | Path,
        score_thresh: float = 0.8,
        *,
        device: str | torch.device = "cpu",
        min_size: int = 800,
        max_size: int = 1333,
    ):
        path = Path(weights)
        state_dict = load_torchvision_state_dict(path)
        self.arch = _infer_arch(state_dict, path)
        self.score_thresh = float(score_thresh)
        self.device = torch.device(device)
        builder = _ARCHS[self.arch][0]
        model = builder(
            weights=None,
            weights_backbone=None,
            num_classes=91,
            box_score_thresh=self.score_thresh,
            min_size=min_size,
            max_size=max_size,
        )
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as e:
            raise PersonDetectorError(f"{path} does not fit {self.arch}: {e}") from e
        self.model = model.eval().to(self.device)

    @torch.inference_mode()
    def _detect_same_size(
        self, frames_rgb: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        images = [
            torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float().div_(255)
            for frame in frames_rgb
        ]
        found = []
        for out in self.model(images):
            person = out["labels"] == _PERSON_LABEL
            found.append((out["boxes"][person].cpu().numpy(), out["scores"][person].cpu().numpy()))
        return found
