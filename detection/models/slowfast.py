"""SlowFast (Feichtenhofer et al., ICCV 2019) and Slow-only detection networks.

Both take plain arguments (no config); `detection.models.build_model(cfg)` maps config keys to
them. Module names equal PySlowFast's (`s1.pathway0_stem`, `s1_fuse.conv_f2s`, `s2.pathway1_res0`,
..., `head.projection`), so its checkpoints load as they are.

PySlowFast also has a `pathway{i}_pool` after res2; for the slow and slowfast architectures its
kernel is 1x1x1 (an identity without parameters), so it is left out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .nonlocal_block import NonLocal
from .resnet3d import (
    STAGE_DEPTHS,
    BottleneckTransform,
    ResStage,
    VideoModelStem,
    block_temporal_kernels,
)
from .roi_head import ResNetRoIHead

# Temporal kernel basis of conv1, res2, res3, res4, res5 (PySlowFast's "slow" architecture and
# the Slow/Fast pathways of "slowfast"): the Slow pathway is 2D until res4, the Fast one is 3D
# throughout. RESNET.TEMPORAL_KERNEL_BASIS overrides them.
SLOW_TEMPORAL_BASIS = (1, 1, 1, 3, 3)
FAST_TEMPORAL_BASIS = (5, 3, 3, 3, 3)
SLOWFAST_TEMPORAL_BASIS = tuple(zip(SLOW_TEMPORAL_BASIS, FAST_TEMPORAL_BASIS, strict=True))
SLOW_ONLY_TEMPORAL_BASIS = tuple((k,) for k in SLOW_TEMPORAL_BASIS)

# Per-stage (res2..res5), per-pathway settings of the published AVA detection models.
_NUM_BLOCK_TEMP_KERNEL = ((3, 3), (4, 4), (6, 6), (3, 3))
_SPATIAL_STRIDES = ((1, 1), (2, 2), (2, 2), (1, 1))
_SPATIAL_DILATIONS = ((1, 1), (1, 1), (1, 1), (2, 2))


def check_temporal_kernel_basis(
    basis: Sequence[Sequence[int]], num_pathways: int, name: str = "temporal_kernel_basis"
) -> list[list[int]]:
    """Validate a per-stage (conv1, res2..res5), per-pathway list of temporal kernel sizes;
    errors name the argument or config key `name`.

    Sizes must be odd so that "same" padding keeps the number of frames.
    """
    if len(basis) != 5 or any(len(stage) != num_pathways for stage in basis):
        raise ValueError(
            f"{name} needs 5 stages (conv1, res2..res5) of {num_pathways} "
            f"per-pathway size{'s' if num_pathways > 1 else ''}, got {basis}"
        )
    for stage in basis:
        for k in stage:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
                raise ValueError(
                    f"{name}: temporal kernel sizes must be odd positive ints, got {basis}"
                )
    return [list(stage) for stage in basis]


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


class _DetectionNet(nn.Module):
    """Shared forward of the detection networks: stages in order, then the RoI head."""

    num_pathways: int
    _stage_names: tuple[str, ...]

    def features(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone only: per pathway [B, C, T, H/16, W/16] features (res5 has stride 1)."""
        if len(inputs) != self.num_pathways:
            raise ValueError(
                f"{type(self).__name__} takes a list of {self.num_pathways} pathway tensors, "
                f"got {len(inputs)}"
            )
        for x in inputs:
            if x.dim() != 5:
                raise ValueError(f"pathway inputs must be [B, C, T, H, W], got {tuple(x.shape)}")
        xs = list(inputs)
        for name in self._stage_names:
            xs = getattr(self, name)(xs)
        return xs

    def forward(self, inputs: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """Score each box.

        Args:
            inputs: SlowFast: [slow [B, 3, T/alpha, H, W], fast [B, 3, T, H, W]];
                Slow-only: [slow [B, 3, T, H, W]]. Normalized pixels.
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


def init_weights(model: nn.Module, fc_init_std: float, zero_init_final_bn: bool) -> None:
    """PySlowFast's initialization: He-normal (fan-out) convs, BN gamma 1 (0 for the last BN of
    each residual branch and of each non-local block when `zero_init_final_bn`, so that blocks
    start as identities), normal(0, fc_init_std) projection, zero biases."""
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


class SlowFast(_DetectionNet):
    """SlowFast ResNet-50/101 with an RoI head for spatiotemporal action detection.

    The Fast pathway sees alpha times the Slow pathway's frames with 1/beta_inv of its channels;
    neither pathway is downsampled in time. After conv1 and res2..res4 a `FuseFastToSlow`
    concatenates Fast features onto the Slow ones. res5 has stride 1 and dilation 2 (by default)
    so that the head sees 1/16-resolution features.

    Per-stage arguments are sequences over res2..res5 of (slow, fast) pairs, as PySlowFast's
    RESNET.* and NONLOCAL.* keys; `nonlocal_location[s][p]` lists the blocks of stage s, pathway p
    followed by a non-local block. `temporal_kernel_basis` has five (slow, fast) pairs, conv1 then
    res2..res5; the default is the paper's (Slow 1, 1, 1, 3, 3; Fast 5, 3, 3, 3, 3).
    """

    def __init__(
        self,
        *,
        num_classes: int = 80,
        depth: int = 50,
        width_per_group: int = 64,
        num_groups: int = 1,
        alpha: int = 4,
        beta_inv: int = 8,
        fusion_conv_channel_ratio: int = 2,
        fusion_kernel_size: int = 7,
        input_channels: Sequence[int] = (3, 3),
        temporal_kernel_basis: Sequence[Sequence[int]] = SLOWFAST_TEMPORAL_BASIS,
        num_block_temp_kernel: Sequence[Sequence[int]] = _NUM_BLOCK_TEMP_KERNEL,
        spatial_strides: Sequence[Sequence[int]] = _SPATIAL_STRIDES,
        spatial_dilations: Sequence[Sequence[int]] = _SPATIAL_DILATIONS,
        stride_1x1: bool = False,
        nonlocal_location: Sequence[Sequence[Sequence[int]]] | None = None,
        nonlocal_group: Sequence[Sequence[int]] | None = None,
        nonlocal_pool: Sequence[Sequence[Sequence[int]]] | None = None,
        nonlocal_instantiation: str = "dot_product",
        roi_resolution: int = 7,
        spatial_scale_factor: float = 16,
        aligned: bool = False,
        dropout_rate: float = 0.5,
        head_act: str = "sigmoid",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        fc_init_std: float = 0.01,
        zero_init_final_bn: bool = False,
    ) -> None:
        super().__init__()
        if depth not in STAGE_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
        self.num_pathways = 2
        self.alpha = alpha
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        w = width_per_group
        # Channels the lateral connection adds to the Slow pathway, computed with PySlowFast's
        # rounding so that narrow overrides (e.g. WIDTH_PER_GROUP 8) give its exact shapes.
        lateral_ratio = beta_inv // fusion_conv_channel_ratio

        def fuse(fast_dim: int) -> FuseFastToSlow:
            return FuseFastToSlow(
                fast_dim, fusion_conv_channel_ratio, fusion_kernel_size, alpha, **bn
            )

        names = ["s1", "s1_fuse"]
        basis = check_temporal_kernel_basis(temporal_kernel_basis, 2)
        self.s1 = VideoModelStem(input_channels, [w, w // beta_inv], basis[0], **bn)
        self.s1_fuse = fuse(w // beta_inv)
        dim_in = [w + w // lateral_ratio, w // beta_inv]
        for s, num_blocks in enumerate(STAGE_DEPTHS[depth]):
            out = w * 4 * 2**s
            inner = num_groups * w * 2**s
            stage = ResStage(
                dim_in=dim_in,
                dim_out=[out, out // beta_inv],
                dim_inner=[inner, inner // beta_inv],
                temporal_kernels=[
                    block_temporal_kernels(
                        [basis[s + 1][p]], num_blocks, num_block_temp_kernel[s][p]
                    )
                    for p in range(2)
                ],
                spatial_strides=spatial_strides[s],
                dilations=spatial_dilations[s],
                num_groups=num_groups,
                stride_1x1=stride_1x1,
                nonlocal_indices=nonlocal_location[s] if nonlocal_location else None,
                nonlocal_groups=nonlocal_group[s] if nonlocal_group else None,
                nonlocal_pools=nonlocal_pool[s] if nonlocal_pool else None,
                nonlocal_instantiation=nonlocal_instantiation,
                **bn,
            )
            self.add_module(f"s{s + 2}", stage)
            names.append(f"s{s + 2}")
            if s < 3:
                self.add_module(f"s{s + 2}_fuse", fuse(out // beta_inv))
                names.append(f"s{s + 2}_fuse")
                dim_in = [out + out // lateral_ratio, out // beta_inv]
        self._stage_names = tuple(names)
        self.head = ResNetRoIHead(
            dim_in=[w * 32, w * 32 // beta_inv],
            num_classes=num_classes,
            resolution=roi_resolution,
            spatial_scale_factor=spatial_scale_factor,
            aligned=aligned,
            dropout_rate=dropout_rate,
            act=head_act,
        )
        init_weights(self, fc_init_std, zero_init_final_bn)

    def features(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(inputs) == 2 and inputs[1].dim() == 5 and inputs[0].dim() == 5:
            t_slow, t_fast = inputs[0].shape[2], inputs[1].shape[2]
            if t_fast != self.alpha * t_slow:
                raise ValueError(
                    f"the Fast pathway needs alpha={self.alpha} times the Slow pathway's frames; "
                    f"got slow T={t_slow}, fast T={t_fast}"
                )
        return super().features(inputs)


class Slow(_DetectionNet):
    """Slow-only ResNet-50/101 with an RoI head: the Slow pathway of `SlowFast` without the Fast
    pathway and lateral connections (PySlowFast's "slow" architecture, model name ResNet).

    Per-stage arguments are sequences over res2..res5 of one-entry (pathway) lists, as
    PySlowFast's RESNET.* and NONLOCAL.* keys for single-pathway models; `temporal_kernel_basis`
    has five one-entry lists, conv1 then res2..res5 (default 1, 1, 1, 3, 3).
    """

    def __init__(
        self,
        *,
        num_classes: int = 80,
        depth: int = 50,
        width_per_group: int = 64,
        num_groups: int = 1,
        input_channels: Sequence[int] = (3,),
        temporal_kernel_basis: Sequence[Sequence[int]] = SLOW_ONLY_TEMPORAL_BASIS,
        num_block_temp_kernel: Sequence[Sequence[int]] = tuple(
            (n[0],) for n in _NUM_BLOCK_TEMP_KERNEL
        ),
        spatial_strides: Sequence[Sequence[int]] = tuple((n[0],) for n in _SPATIAL_STRIDES),
        spatial_dilations: Sequence[Sequence[int]] = tuple((n[0],) for n in _SPATIAL_DILATIONS),
        stride_1x1: bool = False,
        nonlocal_location: Sequence[Sequence[Sequence[int]]] | None = None,
        nonlocal_group: Sequence[Sequence[int]] | None = None,
        nonlocal_pool: Sequence[Sequence[Sequence[int]]] | None = None,
        nonlocal_instantiation: str = "softmax",
        roi_resolution: int = 7,
        spatial_scale_factor: float = 16,
        aligned: bool = False,
        dropout_rate: float = 0.5,
        head_act: str = "sigmoid",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        fc_init_std: float = 0.01,
        zero_init_final_bn: bool = False,
    ) -> None:
        super().__init__()
        if depth not in STAGE_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(STAGE_DEPTHS)}, got {depth}")
        self.num_pathways = 1
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        w = width_per_group
        basis = check_temporal_kernel_basis(temporal_kernel_basis, 1)
        self.s1 = VideoModelStem(input_channels, [w], basis[0], **bn)
        dim_in = w
        for s, num_blocks in enumerate(STAGE_DEPTHS[depth]):
            out = w * 4 * 2**s
            inner = num_groups * w * 2**s
            stage = ResStage(
                dim_in=[dim_in],
                dim_out=[out],
                dim_inner=[inner],
                temporal_kernels=[
                    block_temporal_kernels(
                        [basis[s + 1][0]], num_blocks, num_block_temp_kernel[s][0]
                    )
                ],
                spatial_strides=spatial_strides[s],
                dilations=spatial_dilations[s],
                num_groups=num_groups,
                stride_1x1=stride_1x1,
                nonlocal_indices=nonlocal_location[s] if nonlocal_location else None,
                nonlocal_groups=nonlocal_group[s] if nonlocal_group else None,
                nonlocal_pools=nonlocal_pool[s] if nonlocal_pool else None,
                nonlocal_instantiation=nonlocal_instantiation,
                **bn,
            )
            self.add_module(f"s{s + 2}", stage)
            dim_in = out
        self._stage_names = ("s1", "s2", "s3", "s4", "s5")
        self.head = ResNetRoIHead(
            dim_in=[w * 32],
            num_classes=num_classes,
            resolution=roi_resolution,
            spatial_scale_factor=spatial_scale_factor,
            aligned=aligned,
            dropout_rate=dropout_rate,
            act=head_act,
        )
        init_weights(self, fc_init_std, zero_init_final_bn)
