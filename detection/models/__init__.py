"""Detection networks: one ResNet-3D of one or more pathways with an RoI head.

- `PathwayResNet(pathways, lateral=..., head=...)`: the network, built from data: a `Pathway`
  per input clip (width, temporal kernels, strides, non-local blocks), optional `Lateral`
  Fast-to-Slow connections, and an injected head (default `ResNetRoIHead`).
- `SlowFast()` (`SLOW_PATHWAY`, `FAST_PATHWAY`, `SLOWFAST_LATERAL`) and `Slow()`
  (`SLOW_PATHWAY`): the paper's networks; their defaults equal the config's.
- `build_model(cfg)` builds one from the config (the only place that reads model keys).

Call a model as `model([slow, fast], boxes)` (or `model([slow], boxes)`): slow
[B, 3, T/alpha, H, W], fast [B, 3, T, H, W] (Slow-only: slow [B, 3, T, H, W]), boxes [K, 5] =
(batch index, x1, y1, x2, y2) in input pixels; it returns [K, NUM_CLASSES], logits in training
mode and activated scores in eval mode. State-dict names are PySlowFast's.
"""

from .build import build_head, build_model, build_pathways, model_kwargs
from .nonlocal_block import NonLocal
from .pathway import (
    FAST_PATHWAY,
    SLOW_PATHWAY,
    SLOWFAST_LATERAL,
    Lateral,
    Pathway,
    check_temporal_kernel_basis,
)
from .resnet3d import ResStage, VideoModelStem, block_temporal_kernels
from .roi_head import ResNetRoIHead
from .slowfast import FuseFastToSlow, PathwayResNet, Slow, SlowFast

__all__ = [
    "FAST_PATHWAY",
    "SLOWFAST_LATERAL",
    "SLOW_PATHWAY",
    "FuseFastToSlow",
    "Lateral",
    "NonLocal",
    "Pathway",
    "PathwayResNet",
    "ResNetRoIHead",
    "ResStage",
    "Slow",
    "SlowFast",
    "VideoModelStem",
    "block_temporal_kernels",
    "build_head",
    "build_model",
    "build_pathways",
    "check_temporal_kernel_basis",
    "model_kwargs",
]
