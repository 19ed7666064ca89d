"""Detection networks: SlowFast and Slow-only ResNet-3D backbones with an RoI head.

`build_model(cfg)` builds one from the config; the classes also take plain arguments.
Call a model as `model([slow, fast], boxes)` (or `model([slow], boxes)`), boxes [K, 5] =
(batch index, x1, y1, x2, y2) in input pixels; it returns [K, NUM_CLASSES].
"""

from .build import build_model, model_kwargs
from .nonlocal_block import NonLocal
from .resnet3d import ResStage, VideoModelStem, block_temporal_kernels
from .roi_head import ResNetRoIHead
from .slowfast import FuseFastToSlow, Slow, SlowFast

__all__ = [
    "FuseFastToSlow",
    "NonLocal",
    "ResNetRoIHead",
    "ResStage",
    "Slow",
    "SlowFast",
    "VideoModelStem",
    "block_temporal_kernels",
    "build_model",
    "model_kwargs",
]
