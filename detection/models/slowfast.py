"""One detection network for SlowFast (Feichtenhofer et al., ICCV 2019) and Slow-only.

`PathwayResNet` is built from data (`detection.models.pathway`): a list of `Pathway`s (one for
Slow-only, Slow and Fast for SlowFast), optional `Lateral` connections from the second pathway
into the first, and an RoI head that is passed in, as torchvision's
`FasterRCNN(backbone, ..., box_predictor=None)` takes its parts: None builds the standard
`ResNetRoIHead` for the backbone's output channels. `SlowFast` and `Slow` are that class with
the paper's pathways; their defaults equal the config's, so `SlowFast()` is
`build_model(get_cfg())`. `detection.models.build_model(cfg)` maps config keys to arguments.

Module names equal PySlowFast's (`s1.pathway0_stem`, `s1_fuse.conv_f2s`, `s2.pathway1_res0`,
..., `head.projection`), so its checkpoints load as they are. PySlowFast also has a
`pathway{i}_pool` after res2; for the slow and slowfast architectures its kernel is 1x1x1 (an
identity without parameters), so it is left out here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .nonlocal_block import NonLocal
from .pathway import FAST_PATHWAY, SLOW_PATHWAY, SLOWFAST_LATERAL, Lateral, Pathway
from .resnet3d import (
    STAGE_DEPTHS,
    BottleneckTransform,
    ResStage,
    VideoModelStem,
    block_temporal_kernels,
)
from .roi_head import ResNetRoIHead


class FuseFastToSlow(nn.Module):
    """Lateral connection: a time-strided conv (kernel k x 1 x 1, stride alpha) maps Fast features
    to the Slow frame rate, then BN, ReLU, and concatenation onto the Slow features.

    [slow [B, Cs, T, H, W], fast [B, Cf, alpha*T, H, W]] -> [[B, Cs + ratio*Cf, T, H, W], fast].
    """

    def __init__(
        self,
        dim_in: int,
        channel_ratio: int,
        kernel_size: int,
        alpha: int,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv_f2s = nn.Conv3d(
            dim_in,
            dim_in * channel_ratio,
            kernel_size=(kernel_size, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel_size // 2, 0, 0),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(dim_in * channel_ratio, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        slow, fast = xs
        lateral = self.relu(self.bn(self.conv_f2s(fast)))
        return [torch.cat([slow, lateral], dim=1), fast]


def init_weights(model: nn.Module, fc_init_std: float, zero_init_final_bn: bool) -> None:
    """PySlowFast's initialization: He-normal (fan-out) convs, BN gamma 1 (0 for the last BN of
    each residual branch and of each non-local block when `zero_init_final_bn`, so that blocks
    start as identities), normal(0, fc_init_std) linear layers, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=fc_init_std)
            nn.init.zeros_(m.bias)
    if zero_init_final_bn:
        for m in model.modules():
            if isinstance(m, BottleneckTransform):
                nn.init.zeros_(m.c_bn.weight)
            elif isinstance(m, NonLocal):
                nn.init.zeros_(m.bn.weight)


def _channels(base: int, pathways: Sequence[Pathway]) -> list[int]:
    """Per pathway: `base` (a channel count of the full-width ResNet) // its channel_divisor."""
    return [base // p.channel_divisor for p in pathways]


class PathwayResNet(nn.Module):
    """A ResNet-3D of one or more pathways with an RoI head, for spatiotemporal action detection.

    Each pathway is a ResNet-50/101 (conv1, res2..res5) on its own clip; time is never
    downsampled and res5 (stride 1, dilation 2 by default) keeps 1/16 of the input resolution.
    With `lateral`, there are exactly two pathways (Slow, then Fast), and after conv1 and
    res2..res4 a `FuseFastToSlow` concatenates time-strided Fast features onto the Slow ones
    (modules `s1_fuse`..`s4_fuse`). The head gets every pathway's res5 features.

    Args:
        pathways: one `Pathway` per input clip, in input order.
        lateral: Fast-to-Slow connections (two pathways only), or None for independent
            pathways.
        depth: 50 or 101 (RESNET.DEPTH).
        width_per_group: channels of conv1 and width of each group in res2, for a pathway with
            channel_divisor 1 (RESNET.WIDTH_PER_GROUP); res5 outputs 32 times it.
        num_groups: groups of the 3x3 convs, 1 = ResNet, > 1 = ResNeXt (RESNET.NUM_GROUPS).
        stride_1x1: spatial stride in a bottleneck's first (1x1) conv instead of its 3x3 one.
        nonlocal_instantiation: "dot_product" or "softmax" (NONLOCAL.INSTANTIATION).
        bn_eps, bn_momentum: settings of every BatchNorm3d of the backbone (BN.*).
        head: called as `head(features, boxes)` with `features` the per-pathway res5 outputs
            [B, C_p, T_p, H/16, W/16] (C_p from `feature_dims`) and boxes [K, 5]; returns
            [K, num_classes]. None: `ResNetRoIHead(feature_dims, num_classes)` with the head's
            defaults (the config's).
        num_classes: classes of the default head (None: its default, AVA's 80); must be None
            when `head` is given, which has its own.
        fc_init_std, zero_init_final_bn: `init_weights`, which PySlowFast applies to the whole
            network: a given head's convs and linear layers are initialized too.
    """

    def __init__(
        self,
        pathways: Sequence[Pathway],
        *,
        lateral: Lateral | None = None,
        depth: int = 50,
        width_per_group: int = 64,
        num_groups: int = 1,
        stride_1x1: bool = False,
        nonlocal_instantiation: str = "dot_product",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        head: nn.Module | None = None,
        num_classes: int | None = None,
        fc_init_std: float = 0.01,
        zero_init_final_bn: bool = False,
    ) -> None:
        super().__init__()
        if depth not in STAGE_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
        if not pathways:
            raise ValueError("a network needs at least one pathway")
        if lateral is not None and len(pathways) != 2:
            raise ValueError(
                f"lateral connections join a Fast pathway to a Slow one: they need 2 pathways, "
                f"got {len(pathways)}"
            )
        if head is not None and num_classes is not None:
            raise ValueError("num_classes is for the default head; a given head has its own")
        self.pathways = tuple(pathways)
        self.lateral = lateral
        self.num_pathways = len(self.pathways)
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        w = width_per_group
        stem_dims = _channels(w, pathways)
        self.s1 = VideoModelStem(
            [p.input_channels for p in pathways],
            stem_dims,
            [p.temporal_kernel_basis[0] for p in pathways],
            **bn,
        )
        dim_in = self._add_lateral("s1_fuse", stem_dims, bn)
        for s, num_blocks in enumerate(STAGE_DEPTHS[depth]):
            dim_out = _channels(w * 4 * 2**s, pathways)
            stage = ResStage(
                dim_in=dim_in,
                dim_out=dim_out,
                dim_inner=_channels(num_groups * w * 2**s, pathways),
                temporal_kernels=[
                    block_temporal_kernels(
                        [p.temporal_kernel_basis[s + 1]], num_blocks, p.num_block_temp_kernel[s]
                    )
                    for p in pathways
                ],
                spatial_strides=[p.spatial_strides[s] for p in pathways],
                dilations=[p.spatial_dilations[s] for p in pathways],
                num_groups=num_groups,
                stride_1x1=stride_1x1,
                nonlocal_indices=[p.nonlocal_location[s] for p in pathways],
                nonlocal_groups=[p.nonlocal_group[s] for p in pathways],
                nonlocal_pools=[p.nonlocal_pool[s] for p in pathways],
                nonlocal_instantiation=nonlocal_instantiation,
                **bn,
            )
            self.add_module(f"s{s + 2}", stage)
            if s < 3:
                dim_in = self._add_lateral(f"s{s + 2}_fuse", dim_out, bn)
        # Stems, stages and laterals in the order they run (their registration order).
        self._stage_names = tuple(name for name, _ in self.named_children())
        if head is None:
            dims = self.feature_dims(pathways, w)
            head = ResNetRoIHead(dims) if num_classes is None else ResNetRoIHead(dims, num_classes)
        self.head = head
        init_weights(self, fc_init_std, zero_init_final_bn)

    def _add_lateral(self, name: str, dims: list[int], bn: dict[str, float]) -> list[int]:
        """Add the lateral connection `name` after a stage with output channels `dims` (when the
        network has laterals) and return the next stage's input channels."""
        if self.lateral is None:
            return dims
        fuse = FuseFastToSlow(
            dims[1], self.lateral.channel_ratio, self.lateral.kernel_size, self.lateral.alpha, **bn
        )
        self.add_module(name, fuse)
        # The channels the lateral adds. PySlowFast writes them as
        # dims[0] // (BETA_INV // FUSION_CONV_CHANNEL_RATIO), the same number whenever its
        # network can run (e.g. 10 = 8 + 2 for the Slow res2 input at WIDTH_PER_GROUP 8).
        return [dims[0] + dims[1] * self.lateral.channel_ratio, dims[1]]

    @staticmethod
    def feature_dims(pathways: Sequence[Pathway], width_per_group: int = 64) -> list[int]:
        """Channels of each pathway's res5 features, what the head gets: 32 * width_per_group
        // channel_divisor (2048 and 256 for SlowFast R50/R101)."""
        return _channels(32 * width_per_group, pathways)

    def features(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone only: per pathway [B, C_p, T_p, H/16, W/16] features (with the default
        strides), T_p the pathway's input frames."""
        if len(inputs) != self.num_pathways:
            raise ValueError(
                f"{type(self).__name__} takes a list of {self.num_pathways} pathway tensors, "
                f"got {len(inputs)}"
            )
        for x in inputs:
            if x.dim() != 5:
                raise ValueError(f"pathway inputs must be [B, C, T, H, W], got {tuple(x.shape)}")
        if self.lateral is not None:
            t_slow, t_fast = inputs[0].shape[2], inputs[1].shape[2]
            if t_fast != self.lateral.alpha * t_slow:
                raise ValueError(
                    f"the Fast pathway needs alpha={self.lateral.alpha} times the Slow pathway's "
                    f"frames; got slow T={t_slow}, fast T={t_fast}"
                )
        xs = list(inputs)
        for name in self._stage_names:
            xs = getattr(self, name)(xs)
        return xs

    def forward(self, inputs: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """Score each box.

        Args:
            inputs: one clip per pathway, normalized pixels. SlowFast: [slow [B, 3, T/alpha, H,
                W], fast [B, 3, T, H, W]]; Slow-only: [slow [B, 3, T, H, W]].
            boxes: [K, 5] float = (batch index, x1, y1, x2, y2) in input pixels.

        Returns:
            [K, num_classes]: raw logits in training mode (use BCEWithLogits), scores after the
            head activation (sigmoid for AVA) in eval mode. Class i is AVA action id i + 1.
        """
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                f"boxes must be [K, 5] (batch index, x1, y1, x2, y2), got {tuple(boxes.shape)}"
            )
        return self.head(self.features(inputs), boxes)


class SlowFast(PathwayResNet):
    """SlowFast: a Slow pathway (full width, few frames) and a Fast pathway (1/beta_inv of the
    channels, alpha times the frames) joined by lateral connections.

    Called as `model([slow [B, 3, T/alpha, H, W], fast [B, 3, T, H, W]], boxes)`. The defaults
    are PySlowFast's and the config's: beta_inv 8 (`FAST_PATHWAY`), alpha 8 and lateral kernel 5
    (`SLOWFAST_LATERAL`), aligned RoIAlign; the published AVA configs set alpha 4, lateral
    kernel 7 for R50 and unaligned RoIAlign. Other keyword arguments: `PathwayResNet`'s.
    """

    def __init__(
        self,
        slow: Pathway = SLOW_PATHWAY,
        fast: Pathway = FAST_PATHWAY,
        *,
        lateral: Lateral = SLOWFAST_LATERAL,
        **kwargs: Any,
    ) -> None:
        super().__init__((slow, fast), lateral=lateral, **kwargs)


class Slow(PathwayResNet):
    """Slow-only: the Slow pathway of `SlowFast` without the Fast pathway and the lateral
    connections (PySlowFast's "slow" architecture, model name ResNet).

    Called as `model([slow [B, 3, T, H, W]], boxes)`. Keyword arguments: `PathwayResNet`'s.
    """

    def __init__(self, pathway: Pathway = SLOW_PATHWAY, **kwargs: Any) -> None:
        super().__init__((pathway,), **kwargs)
