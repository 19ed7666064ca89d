"""`build_model(cfg)`: the one place that maps config keys to the model classes' arguments."""

from __future__ import annotations

from typing import Any

from yacs.config import CfgNode

from .pathway import FAST_PATHWAY, SLOW_PATHWAY, Lateral, Pathway, check_temporal_kernel_basis
from .roi_head import ResNetRoIHead
from .slowfast import PathwayResNet, Slow, SlowFast

# MODEL.ARCH -> its pathways as the paper has them, whose temporal kernels an empty
# RESNET.TEMPORAL_KERNEL_BASIS means.
_ARCHS: dict[str, tuple[Pathway, ...]] = {
    "slowfast": (SLOW_PATHWAY, FAST_PATHWAY),
    "slow": (SLOW_PATHWAY,),
}


def _per_pathway(cfg: CfgNode, key: str, num_pathways: int, exact: bool = True) -> list:
    """cfg value `key` (a per-stage list of per-pathway entries), checked for its pathway count."""
    section, name = key.split(".")
    value = cfg[section][name]
    if len(value) != 4:
        raise ValueError(f"{key} needs one entry per stage res2..res5 (4), got {value}")
    for stage in value:
        if len(stage) != num_pathways if exact else len(stage) < num_pathways:
            raise ValueError(
                f"{key} needs {num_pathways} per-pathway entr{'y' if num_pathways == 1 else 'ies'}"
                f" per stage for MODEL.ARCH {cfg.MODEL.ARCH!r}, got {value}"
            )
    return value


def build_pathways(cfg: CfgNode) -> list[Pathway]:
    """The MODEL.ARCH network's pathways from the per-stage, per-pathway config keys."""
    if cfg.MODEL.ARCH not in _ARCHS:
        raise ValueError(f"MODEL.ARCH must be one of {sorted(_ARCHS)}, got {cfg.MODEL.ARCH!r}")
    defaults = _ARCHS[cfg.MODEL.ARCH]
    n = len(defaults)
    if len(cfg.DATA.INPUT_CHANNEL_NUM) != n:
        raise ValueError(
            f"DATA.INPUT_CHANNEL_NUM needs {n} entries for MODEL.ARCH "
            f"{cfg.MODEL.ARCH!r}, got {cfg.DATA.INPUT_CHANNEL_NUM}"
        )
    if cfg.RESNET.TEMPORAL_KERNEL_BASIS:
        basis = check_temporal_kernel_basis(
            cfg.RESNET.TEMPORAL_KERNEL_BASIS, n, "RESNET.TEMPORAL_KERNEL_BASIS"
        )
        kernels = [tuple(stage[p] for stage in basis) for p in range(n)]
    else:
        kernels = [p.temporal_kernel_basis for p in defaults]
    temp_kernel = _per_pathway(cfg, "RESNET.NUM_BLOCK_TEMP_KERNEL", n)
    strides = _per_pathway(cfg, "RESNET.SPATIAL_STRIDES", n)
    dilations = _per_pathway(cfg, "RESNET.SPATIAL_DILATIONS", n)
    location = _per_pathway(cfg, "NONLOCAL.LOCATION", n)
    group = _per_pathway(cfg, "NONLOCAL.GROUP", n)
    # PySlowFast reads POOL by pathway index only, so its single-pathway configs keep the
    # two-pathway default; extra entries are ignored the same way here.
    pool = _per_pathway(cfg, "NONLOCAL.POOL", n, exact=False)
    return [
        Pathway(
            # The Fast pathway (the second) has 1/BETA_INV of the Slow pathway's channels.
            channel_divisor=1 if p == 0 else cfg.SLOWFAST.BETA_INV,
            input_channels=cfg.DATA.INPUT_CHANNEL_NUM[p],
            temporal_kernel_basis=kernels[p],
            num_block_temp_kernel=tuple(stage[p] for stage in temp_kernel),
            spatial_strides=tuple(stage[p] for stage in strides),
            spatial_dilations=tuple(stage[p] for stage in dilations),
            nonlocal_location=tuple(tuple(stage[p]) for stage in location),
            nonlocal_group=tuple(stage[p] for stage in group),
            nonlocal_pool=tuple(tuple(stage[p]) for stage in pool),
        )
        for p in range(n)
    ]


def build_head(cfg: CfgNode, pathways: list[Pathway]) -> ResNetRoIHead:
    """The RoI head (MODEL.*, DETECTION.*) for the res5 features of `pathways`."""
    return ResNetRoIHead(
        PathwayResNet.feature_dims(pathways, cfg.RESNET.WIDTH_PER_GROUP),
        num_classes=cfg.MODEL.NUM_CLASSES,
        resolution=cfg.DETECTION.ROI_XFORM_RESOLUTION,
        spatial_scale_factor=cfg.DETECTION.SPATIAL_SCALE_FACTOR,
        aligned=cfg.DETECTION.ALIGNED,
        dropout_rate=cfg.MODEL.DROPOUT_RATE,
        act=cfg.MODEL.HEAD_ACT,
    )


def model_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """`PathwayResNet` arguments of the MODEL.ARCH network (see `defaults.py`), the head built:
    `PathwayResNet(**model_kwargs(cfg))` is `build_model(cfg)` under the generic class name."""
    pathways = build_pathways(cfg)
    kwargs: dict[str, Any] = {
        "pathways": pathways,
        "depth": cfg.RESNET.DEPTH,
        "width_per_group": cfg.RESNET.WIDTH_PER_GROUP,
        "num_groups": cfg.RESNET.NUM_GROUPS,
        "stride_1x1": cfg.RESNET.STRIDE_1X1,
        "nonlocal_instantiation": cfg.NONLOCAL.INSTANTIATION,
        "bn_eps": cfg.BN.EPSILON,
        "bn_momentum": cfg.BN.MOMENTUM,
        "head": build_head(cfg, pathways),
        "fc_init_std": cfg.MODEL.FC_INIT_STD,
        "zero_init_final_bn": cfg.RESNET.ZERO_INIT_FINAL_BN,
    }
    if cfg.MODEL.ARCH == "slowfast":
        kwargs["lateral"] = Lateral(
            alpha=cfg.SLOWFAST.ALPHA,
            channel_ratio=cfg.SLOWFAST.FUSION_CONV_CHANNEL_RATIO,
            kernel_size=cfg.SLOWFAST.FUSION_KERNEL_SZ,
        )
    return kwargs


def build_model(cfg: CfgNode) -> PathwayResNet:
    """The detection network of MODEL.ARCH ("slowfast" -> `SlowFast`, "slow" -> `Slow`),
    randomly initialized as PySlowFast does; load weights with `detection.checkpoint`.

    The model is called as `model(inputs, boxes)`; see `PathwayResNet.forward` for the contract.
    """
    kwargs = model_kwargs(cfg)
    pathways = kwargs.pop("pathways")
    if cfg.MODEL.ARCH == "slowfast":
        slow, fast = pathways
        return SlowFast(slow, fast, **kwargs)
    return Slow(*pathways, **kwargs)
