"""What a pathway and a lateral connection are, as data: `PathwayResNet` is built from them.

A `Pathway` holds everything that PySlowFast's per-pathway config keys (RESNET.*, NONLOCAL.*,
DATA.INPUT_CHANNEL_NUM, SLOWFAST.BETA_INV) say about one pathway; a `Lateral` holds the
SLOWFAST.* settings of the Fast-to-Slow connections. Their defaults are the config's
(`detection/config/defaults.py`): `SLOW_PATHWAY`, `FAST_PATHWAY` and `SLOWFAST_LATERAL` are
PySlowFast's Slow pathway, Fast pathway and lateral connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

NUM_STAGES = 4
"""Residual stages res2..res5; per-stage fields have one entry each (temporal kernels also have
one for conv1)."""


def _check_kernels(kernels: Sequence[int], name: str, shown: object) -> None:
    for k in kernels:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            # Even sizes would change the number of frames under "same" padding.
            raise ValueError(
                f"{name}: temporal kernel sizes must be odd positive ints, got {shown}"
            )


def check_temporal_kernel_basis(
    basis: Sequence[Sequence[int]], num_pathways: int, name: str = "temporal_kernel_basis"
) -> list[list[int]]:
    """Validate a per-stage (conv1, res2..res5), per-pathway list of temporal kernel sizes, as
    RESNET.TEMPORAL_KERNEL_BASIS writes it; errors name the argument or config key `name`.

    Returns the same sizes as lists of lists.
    """
    if len(basis) != NUM_STAGES + 1 or any(len(stage) != num_pathways for stage in basis):
        raise ValueError(
            f"{name} needs 5 stages (conv1, res2..res5) of {num_pathways} "
            f"per-pathway size{'s' if num_pathways > 1 else ''}, got {basis}"
        )
    for stage in basis:
        _check_kernels(stage, name, basis)
    return [list(stage) for stage in basis]


@dataclass(frozen=True)
class Pathway:
    """One pathway: a ResNet (stem conv1, stages res2..res5) on its own clip [B, C, T, H, W].

    The defaults are PySlowFast's Slow pathway, which is also its Slow-only network: the first
    entry of each per-pathway config key. Per-stage fields have one entry per stage res2..res5;
    `temporal_kernel_basis` starts with conv1. Sequences are stored as tuples.

    Attributes:
        channel_divisor: the pathway's channels are the ResNet's divided by this, rounded down
            as PySlowFast does (conv1 gives width_per_group // d, stage s outputs
            4 * width_per_group * 2**s // d): 1 for the Slow pathway, SLOWFAST.BETA_INV (8) for
            the Fast one.
        input_channels: channels of the pathway's input clip (DATA.INPUT_CHANNEL_NUM), 3 = RGB.
        temporal_kernel_basis: odd temporal kernel size of conv1, res2, res3, res4, res5 (one
            column of RESNET.TEMPORAL_KERNEL_BASIS). The paper's: Slow (1, 1, 1, 3, 3), 2D
            until res4; Fast (5, 3, 3, 3, 3). Time is never downsampled, so "same" padding
            keeps T.
        num_block_temp_kernel: per stage, how many of its first blocks use the stage's temporal
            kernel; the others use 1 (RESNET.NUM_BLOCK_TEMP_KERNEL).
        spatial_strides: per stage, spatial stride of its first block (RESNET.SPATIAL_STRIDES);
            (1, 2, 2, 1) after the stem's 4 gives 1/16-resolution res5 features.
        spatial_dilations: per stage, dilation of the 3x3 convs (RESNET.SPATIAL_DILATIONS);
            res5's 2 makes up for its stride 1.
        nonlocal_location: per stage, indices of the blocks followed by a non-local block
            (NONLOCAL.LOCATION).
        nonlocal_group: per stage, a non-local block attends within this many consecutive time
            chunks separately (NONLOCAL.GROUP); 1 = the whole clip.
        nonlocal_pool: per stage, (T, H, W) max-pool kernel on the non-local phi and g maps
            (NONLOCAL.POOL).
    """

    channel_divisor: int = 1
    input_channels: int = 3
    temporal_kernel_basis: tuple[int, ...] = (1, 1, 1, 3, 3)
    num_block_temp_kernel: tuple[int, ...] = (3, 4, 6, 3)
    spatial_strides: tuple[int, ...] = (1, 2, 2, 1)
    spatial_dilations: tuple[int, ...] = (1, 1, 1, 2)
    nonlocal_location: tuple[tuple[int, ...], ...] = ((), (), (), ())
    nonlocal_group: tuple[int, ...] = (1, 1, 1, 1)
    nonlocal_pool: tuple[tuple[int, ...], ...] = ((1, 2, 2),) * NUM_STAGES

    def __post_init__(self) -> None:
        # Lists are accepted and stored as tuples, so that pathways stay hashable and frozen.
        for name in (
            "temporal_kernel_basis",
            "num_block_temp_kernel",
            "spatial_strides",
            "spatial_dilations",
            "nonlocal_group",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("nonlocal_location", "nonlocal_pool"):
            object.__setattr__(self, name, tuple(tuple(x) for x in getattr(self, name)))
        if self.channel_divisor < 1:
            raise ValueError(f"Pathway.channel_divisor must be >= 1, got {self.channel_divisor}")
        if len(self.temporal_kernel_basis) != NUM_STAGES + 1:
            raise ValueError(
                "Pathway.temporal_kernel_basis needs 5 sizes (conv1, res2..res5), got "
                f"{self.temporal_kernel_basis}"
            )
        _check_kernels(
            self.temporal_kernel_basis, "Pathway.temporal_kernel_basis", self.temporal_kernel_basis
        )
        for name in (
            "num_block_temp_kernel",
            "spatial_strides",
            "spatial_dilations",
            "nonlocal_location",
            "nonlocal_group",
            "nonlocal_pool",
        ):
            value = getattr(self, name)
            if len(value) != NUM_STAGES:
                raise ValueError(
                    f"Pathway.{name} needs one entry per stage res2..res5, got {value}"
                )


@dataclass(frozen=True)
class Lateral:
    """Fast-to-Slow lateral connections (`FuseFastToSlow`) after conv1, res2, res3 and res4 of a
    two-pathway network; the defaults are the config's SLOWFAST.* (PySlowFast's).

    Attributes:
        alpha: frame-rate ratio Fast / Slow (SLOWFAST.ALPHA): the Fast clip has alpha times the
            Slow clip's frames, and the lateral conv strides time by alpha.
        channel_ratio: a lateral outputs channel_ratio x the Fast pathway's channels, which are
            concatenated onto the Slow ones (SLOWFAST.FUSION_CONV_CHANNEL_RATIO).
        kernel_size: odd temporal kernel of the lateral conv (SLOWFAST.FUSION_KERNEL_SZ).
    """

    alpha: int = 8
    channel_ratio: int = 2
    kernel_size: int = 5

    def __post_init__(self) -> None:
        if self.alpha < 1 or self.channel_ratio < 1:
            raise ValueError(f"Lateral: alpha and channel_ratio must be >= 1, got {self}")
        _check_kernels([self.kernel_size], "Lateral.kernel_size", self.kernel_size)


SLOW_PATHWAY = Pathway()
"""PySlowFast's Slow pathway (and Slow-only network): full width, 2D until res4."""

FAST_PATHWAY = Pathway(channel_divisor=8, temporal_kernel_basis=(5, 3, 3, 3, 3))
"""PySlowFast's Fast pathway: 1/8 of the channels (SLOWFAST.BETA_INV 8), temporal throughout."""

SLOWFAST_LATERAL = Lateral()
"""PySlowFast's default lateral connections: alpha 8, channel ratio 2, kernel 5."""
