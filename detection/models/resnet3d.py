"""ResNet-3D parts shared by the Slow and SlowFast networks: stem, bottleneck block, stage.

Every part works on a list of pathway tensors ([slow] or [slow, fast]), each [B, C, T, H, W].
Module names (`pathway0_stem`, `pathway1_res3.branch2.b_bn`, ...) follow PySlowFast so that its
checkpoints load without renaming. Nothing here reads a config: every choice is an argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .nonlocal_block import NonLocal

# Residual blocks in res2, res3, res4, res5 for each supported depth.
STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def block_temporal_kernels(basis: Sequence[int], num_blocks: int, num_temporal: int) -> list[int]:
    """Temporal kernel size of each block of a stage, by PySlowFast's rule.

    The stage's basis (e.g. [3] for the Fast pathway, [1] for Slow res2/res3, [3, 1] for I3D) is
    cycled over the first `num_temporal` blocks (RESNET.NUM_BLOCK_TEMP_KERNEL); the remaining
    blocks get 1. So R101's res4 with basis [3] and 6 gives six blocks of 3 then seventeen of 1.
    """
    if not 0 <= num_temporal <= num_blocks:
        raise ValueError(
            f"NUM_BLOCK_TEMP_KERNEL entry {num_temporal} must be between 0 and the stage's "
            f"{num_blocks} blocks"
        )
    return [basis[i % len(basis)] for i in range(num_temporal)] + [1] * (num_blocks - num_temporal)


class ResNetBasicStem(nn.Module):
    """conv (kT x 7 x 7, spatial stride 2) -> BN -> ReLU -> max-pool (1 x 3 x 3, spatial stride 2).

    [B, dim_in, T, H, W] -> [B, dim_out, T, H/4, W/4]; time is never downsampled.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        temporal_kernel: int,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            dim_in,
            dim_out,
            kernel_size=(temporal_kernel, 7, 7),
            stride=(1, 2, 2),
            padding=(temporal_kernel // 2, 3, 3),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        self.relu = nn.ReLU(inplace=True)
        self.pool_layer = nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_layer(self.relu(self.bn(self.conv(x))))


class VideoModelStem(nn.Module):
    """One `ResNetBasicStem` per pathway, named `pathway{i}_stem`."""

    def __init__(
        self,
        dim_in: Sequence[int],
        dim_out: Sequence[int],
        temporal_kernels: Sequence[int],
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if not len(dim_in) == len(dim_out) == len(temporal_kernels):
            raise ValueError(
                "stem: dim_in, dim_out and temporal_kernels need one entry per pathway"
            )
        self.num_pathways = len(dim_in)
        for p in range(self.num_pathways):
            stem = ResNetBasicStem(dim_in[p], dim_out[p], temporal_kernels[p], bn_eps, bn_momentum)
            self.add_module(f"pathway{p}_stem", stem)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [getattr(self, f"pathway{p}_stem")(x) for p, x in enumerate(xs)]


class BottleneckTransform(nn.Module):
    """Residual branch: kT x 1 x 1 (a) -> 1 x 3 x 3 (b, grouped, dilated) -> 1 x 1 x 1 (c), each
    followed by BN (ReLU after a and b). The spatial stride sits in b (or in a with stride_1x1).
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        temporal_kernel: int,
        stride: int,
        num_groups: int = 1,
        dilation: int = 1,
        stride_1x1: bool = False,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        stride_a, stride_b = (stride, 1) if stride_1x1 else (1, stride)
        self.a = nn.Conv3d(
            dim_in,
            dim_inner,
            kernel_size=(temporal_kernel, 1, 1),
            stride=(1, stride_a, stride_a),
            padding=(temporal_kernel // 2, 0, 0),
            bias=False,
        )
        self.a_bn = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.a_relu = nn.ReLU(inplace=True)
        self.b = nn.Conv3d(
            dim_inner,
            dim_inner,
            kernel_size=(1, 3, 3),
            stride=(1, stride_b, stride_b),
            padding=(0, dilation, dilation),
            dilation=(1, dilation, dilation),
            groups=num_groups,
            bias=False,
        )
        self.b_bn = nn.BatchNorm3d(dim_inner, eps=bn_eps, momentum=bn_momentum)
        self.b_relu = nn.ReLU(inplace=True)
        self.c = nn.Conv3d(dim_inner, dim_out, kernel_size=1, bias=False)
        self.c_bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        return self.c_bn(self.c(x))


class ResBlock(nn.Module):
    """relu(shortcut(x) + branch2(x)); the shortcut is a strided 1x1x1 conv + BN (`branch1`) when
    the channels or the resolution change, the identity otherwise."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        dim_inner: int,
        temporal_kernel: int,
        stride: int,
        num_groups: int = 1,
        dilation: int = 1,
        stride_1x1: bool = False,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.branch1: nn.Conv3d | None
        if dim_in != dim_out or stride != 1:
            self.branch1 = nn.Conv3d(
                dim_in, dim_out, kernel_size=1, stride=(1, stride, stride), bias=False
            )
            self.branch1_bn = nn.BatchNorm3d(dim_out, eps=bn_eps, momentum=bn_momentum)
        else:
            self.branch1 = None
        self.branch2 = BottleneckTransform(
            dim_in,
            dim_out,
            dim_inner,
            temporal_kernel,
            stride,
            num_groups,
            dilation,
            stride_1x1,
            bn_eps,
            bn_momentum,
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else self.branch1_bn(self.branch1(x))
        return self.relu(shortcut + self.branch2(x))


class ResStage(nn.Module):
    """One ResNet stage for every pathway: blocks `pathway{p}_res{i}`, and a non-local block
    `pathway{p}_nonlocal{i}` after block i when i is in `nonlocal_indices[p]`.

    All sequence arguments have one entry per pathway; `temporal_kernels[p]` lists the temporal
    kernel of each block (see `block_temporal_kernels`) and so also gives the number of blocks.
    Only the first block of a pathway changes channels and applies `spatial_strides[p]`.
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        dim_out: Sequence[int],
        dim_inner: Sequence[int],
        temporal_kernels: Sequence[Sequence[int]],
        spatial_strides: Sequence[int],
        dilations: Sequence[int],
        num_groups: int = 1,
        stride_1x1: bool = False,
        nonlocal_indices: Sequence[Sequence[int]] | None = None,
        nonlocal_groups: Sequence[int] | None = None,
        nonlocal_pools: Sequence[Sequence[int]] | None = None,
        nonlocal_instantiation: str = "dot_product",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        num_pathways = len(dim_in)
        nonlocal_indices = nonlocal_indices or [[] for _ in range(num_pathways)]
        nonlocal_groups = nonlocal_groups or [1] * num_pathways
        nonlocal_pools = nonlocal_pools or [(1, 1, 1)] * num_pathways
        lengths = {
            len(x)
            for x in (dim_in, dim_out, dim_inner, temporal_kernels, spatial_strides, dilations)
        }
        if lengths != {num_pathways} or len(nonlocal_indices) != num_pathways:
            raise ValueError("ResStage: every per-pathway argument needs one entry per pathway")
        self.num_pathways = num_pathways
        self.nonlocal_groups = list(nonlocal_groups)
        # Per pathway, the order in which to run this stage's children.
        self._order: list[list[str]] = []
        for p in range(num_pathways):
            unknown = set(nonlocal_indices[p]) - set(range(len(temporal_kernels[p])))
            if unknown:
                raise ValueError(
                    f"non-local location {sorted(unknown)} of pathway {p} is past the stage's "
                    f"{len(temporal_kernels[p])} blocks"
                )
            names = []
            for i, temporal_kernel in enumerate(temporal_kernels[p]):
                block = ResBlock(
                    dim_in[p] if i == 0 else dim_out[p],
                    dim_out[p],
                    dim_inner[p],
                    temporal_kernel,
                    spatial_strides[p] if i == 0 else 1,
                    num_groups,
                    dilations[p],
                    stride_1x1,
                    bn_eps,
                    bn_momentum,
                )
                self.add_module(f"pathway{p}_res{i}", block)
                names.append(f"pathway{p}_res{i}")
                if i in nonlocal_indices[p]:
                    nonlocal_block = NonLocal(
                        dim_out[p],
                        dim_out[p] // 2,
                        nonlocal_pools[p],
                        nonlocal_instantiation,
                        bn_eps,
                        bn_momentum,
                    )
                    self.add_module(f"pathway{p}_nonlocal{i}", nonlocal_block)
                    names.append(f"pathway{p}_nonlocal{i}")
            self._order.append(names)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for p, x in enumerate(xs):
            for name in self._order[p]:
                module = getattr(self, name)
                if isinstance(module, NonLocal) and self.nonlocal_groups[p] > 1:
                    x = _grouped_in_time(module, x, self.nonlocal_groups[p])
                else:
                    x = module(x)
            outputs.append(x)
        return outputs


def _grouped_in_time(module: nn.Module, x: torch.Tensor, groups: int) -> torch.Tensor:
    """Run `module` on `groups` consecutive time chunks separately, as PySlowFast's NONLOCAL.GROUP
    does by folding time into the batch: [B, C, T, H, W] -> [B * g, C, T / g, H, W] and back."""
    b, c, t, h, w = x.shape
    if t % groups:
        raise ValueError(f"non-local group {groups} does not divide the {t} frames of its input")
    folded = x.transpose(1, 2).reshape(b * groups, t // groups, c, h, w).transpose(1, 2)
    y = module(folded)
    return y.transpose(1, 2).reshape(b, t, c, h, w).transpose(1, 2)
