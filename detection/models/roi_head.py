"""RoI head of the detection models: one feature vector per person box, scored per action class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import roi_align

HEAD_ACTIVATIONS = ("sigmoid", "softmax", "none")


class ResNetRoIHead(nn.Module):
    """Per pathway: average over time, RoIAlign, spatial max-pool; then concatenate the pathways,
    dropout, linear `projection`. The defaults are the config's (and PySlowFast's).

    Args:
        dim_in: channels of each pathway's feature map (`PathwayResNet.feature_dims`).
        num_classes: outputs per box, MODEL.NUM_CLASSES (class index i is AVA action id i + 1).
        resolution: RoIAlign output size (square), DETECTION.ROI_XFORM_RESOLUTION.
        spatial_scale_factor: input pixels per feature-map cell (DETECTION.SPATIAL_SCALE_FACTOR);
            boxes are scaled by its inverse.
        aligned: torchvision's pixel-shift-corrected RoIAlign (DETECTION.ALIGNED); PySlowFast's
            published AVA models were trained with False, which their configs set.
        dropout_rate: dropout before the projection, training only (MODEL.DROPOUT_RATE).
        act: activation applied in eval mode (MODEL.HEAD_ACT): "sigmoid" (multi-label AVA),
            "softmax" or "none". Training mode returns logits so that the loss can fuse the
            sigmoid.
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        num_classes: int = 80,
        resolution: int = 7,
        spatial_scale_factor: float = 16,
        aligned: bool = True,
        dropout_rate: float = 0.5,
        act: str = "sigmoid",
    ) -> None:
        super().__init__()
        if act not in HEAD_ACTIVATIONS:
            raise ValueError(f"head activation must be one of {HEAD_ACTIVATIONS}, got {act!r}")
        self.resolution = resolution
        self.spatial_scale = 1.0 / spatial_scale_factor
        self.aligned = aligned
        self.act = act
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.projection = nn.Linear(sum(dim_in), num_classes)

    def pool(self, features: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """features: per pathway [B, C_p, T_p, H, W]; boxes: [K, 5] = (batch index, x1, y1, x2, y2)
        in input pixels -> [K, sum(C_p)] box features."""
        pooled = []
        for x in features:
            # The mean over all frames is PySlowFast's AvgPool3d([T, 1, 1]) for the T it was
            # built for, and stays right for clips of any length.
            if x.is_contiguous(memory_format=torch.channels_last_3d):
                # PyTorch reduces a channels-last tensor over time ~20x slower than this view.
                x = x.permute(0, 2, 3, 4, 1).mean(dim=1).permute(0, 3, 1, 2)
            else:
                x = x.mean(dim=2)
            x = roi_align(
                x,
                boxes.to(x.dtype),
                output_size=self.resolution,
                spatial_scale=self.spatial_scale,
                sampling_ratio=0,
                aligned=self.aligned,
            )
            pooled.append(x.amax(dim=(2, 3)))
        return torch.cat(pooled, dim=1)

    def forward(self, features: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """-> [K, num_classes]: logits in training mode, activated scores in eval mode."""
        x = self.projection(self.dropout(self.pool(features, boxes)))
        if self.training or self.act == "none":
            return x
        return torch.sigmoid(x) if self.act == "sigmoid" else torch.softmax(x, dim=1)
