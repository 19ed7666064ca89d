"""Non-local block (Wang et al., "Non-local Neural Networks", CVPR 2018) for 3D feature maps.

Attribute names (`conv_theta`, `conv_phi`, `conv_g`, `conv_out`, `bn`) follow PySlowFast so its
checkpoints load without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

INSTANTIATIONS = ("dot_product", "softmax")


class NonLocal(nn.Module):
    """Residual non-local block: x + BN(conv_out(attention(theta(x), phi(x)) @ g(x))).

    Args:
        dim: channels of the input and output.
        dim_inner: channels of the embedded theta/phi/g maps (PySlowFast uses dim // 2).
        pool_size: (T, H, W) max-pool applied to the input of phi and g, which shrinks the
            attention matrix; all ones disables it.
        instantiation: "dot_product" (affinities divided by their number) or "softmax"
            (scaled by dim_inner ** -0.5, then softmax).
        bn_eps, bn_momentum: settings of the output BatchNorm3d.
    """

    def __init__(
        self,
        dim: int,
        dim_inner: int,
        pool_size: Sequence[int] = (1, 1, 1),
        instantiation: str = "dot_product",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if instantiation not in INSTANTIATIONS:
            raise ValueError(
                f"non-local instantiation must be one of {INSTANTIATIONS}, got {instantiation!r}"
            )
        self.dim_inner = dim_inner
        self.instantiation = instantiation
        self.conv_theta = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_phi = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_g = nn.Conv3d(dim, dim_inner, kernel_size=1)
        self.conv_out = nn.Conv3d(dim_inner, dim, kernel_size=1)
        self.bn = nn.BatchNorm3d(dim, eps=bn_eps, momentum=bn_momentum)
        pool_size = tuple(int(s) for s in pool_size)
        self.pool = (
            nn.MaxPool3d(kernel_size=pool_size, stride=pool_size)
            if any(s > 1 for s in pool_size)
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, T, H, W] -> [N, C, T, H, W]."""
        n, _, t, h, w = x.shape
        theta = self.conv_theta(x).flatten(2)  # [N, C', THW]
        pooled = self.pool(x)
        phi = self.conv_phi(pooled).flatten(2)  # [N, C', P]
        g = self.conv_g(pooled).flatten(2)  # [N, C', P]
        affinity = torch.bmm(theta.transpose(1, 2), phi)  # [N, THW, P]
        if self.instantiation == "softmax":
            affinity = torch.softmax(affinity * self.dim_inner**-0.5, dim=2)
        else:
            affinity = affinity / affinity.shape[2]
        y = torch.bmm(g, affinity.transpose(1, 2)).view(n, self.dim_inner, t, h, w)
        return x + self.bn(self.conv_out(y))
