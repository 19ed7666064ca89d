"""Helpers shared by the export and runtime tests (imported from the tests folder): the skip mark
for a missing export extra, weights whose scores spread over (0, 1), and random clips with boxes
inside the frame."""

import importlib.util
from pathlib import Path

import pytest
import torch
from model_helpers import randomize_batchnorm

from detection.models import build_model

_MISSING = [
    m
    for m in ("onnx", "onnxscript", "onnxruntime", "openvino")
    if importlib.util.find_spec(m) is None
]
needs_export = pytest.mark.skipif(
    bool(_MISSING), reason=f"export needs {', '.join(_MISSING)} (the export extra)"
)


def save_weights(cfg, path: Path) -> Path:
    """Random weights with random BN affines, BN statistics of real activations, and logits of
    std 2 (as a trained model's spread): the scores then cover (0, 1) instead of sitting at 0, 1
    or 0.5, where the sigmoid would hide any error of the export."""
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model(cfg))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.reset_running_stats()
            module.momentum = None  # running statistics = those of the 8 clips below
    clips, boxes = random_inputs(cfg, 8, [0, 3, 7, 7], seed=100)
    with torch.no_grad():
        model.train()
        model(clips, boxes)
        model.eval()
        features = model.head.pool(model.features(clips), boxes)
        weight = model.head.projection.weight
        weight.normal_()
        weight.mul_(2 / (features @ weight.T).std())
        model.head.projection.bias.zero_()
    torch.save({"model_state": model.state_dict()}, path)
    return path


def random_inputs(cfg, batch: int, batch_index: list[int], seed: int, height=None, width=None):
    """Random normalized clips and random boxes inside the frame, for `cfg`'s clip size unless
    `height` and `width` are given."""
    from detection.export import ClipShape

    g = torch.Generator().manual_seed(seed)
    clip = ClipShape.from_config(cfg, height, width)
    fast = torch.randn(batch, 3, clip.num_frames, clip.height, clip.width, generator=g)
    clips = [fast] if clip.alpha is None else [fast[:, :, :: clip.alpha].contiguous(), fast]
    k = len(batch_index)
    corners = torch.rand(k, 2, 2, generator=g).sort(dim=1).values
    corners = corners * torch.tensor([clip.width - 1, clip.height - 1])
    boxes = torch.cat(
        [torch.tensor(batch_index, dtype=torch.float32)[:, None], corners.flatten(1)], dim=1
    )
    return clips, boxes
