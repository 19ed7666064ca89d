"""`build_model(cfg)`: the one place that maps config keys to the model classes' arguments."""

from __future__ import annotations

from typing import Any

from torch import nn
from yacs.config import CfgNode

from .slowfast import Slow, SlowFast, check_temporal_kernel_basis

_ARCHS = {"slowfast": (SlowFast, 2), "slow": (Slow, 1)}


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
    return [[list(p) if isinstance(p, list | tuple) else p for p in stage] for stage in value]


def model_kwargs(cfg: CfgNode) -> dict[str, Any]:
    """Constructor arguments of the MODEL.ARCH network from the config (see `defaults.py`)."""
    if cfg.MODEL.ARCH not in _ARCHS:
        raise ValueError(f"MODEL.ARCH must be one of {sorted(_ARCHS)}, got {cfg.MODEL.ARCH!r}")
    num_pathways = _ARCHS[cfg.MODEL.ARCH][1]
    if len(cfg.DATA.INPUT_CHANNEL_NUM) != num_pathways:
        raise ValueError(
            f"DATA.INPUT_CHANNEL_NUM needs {num_pathways} entries for MODEL.ARCH "
            f"{cfg.MODEL.ARCH!r}, got {cfg.DATA.INPUT_CHANNEL_NUM}"
        )
    kwargs: dict[str, Any] = {
        "num_classes": cfg.MODEL.NUM_CLASSES,
        "depth": cfg.RESNET.DEPTH,
        "width_per_group": cfg.RESNET.WIDTH_PER_GROUP,
        "num_groups": cfg.RESNET.NUM_GROUPS,
        "input_channels": list(cfg.DATA.INPUT_CHANNEL_NUM),
        "num_block_temp_kernel": _per_pathway(cfg, "RESNET.NUM_BLOCK_TEMP_KERNEL", num_pathways),
        "spatial_strides": _per_pathway(cfg, "RESNET.SPATIAL_STRIDES", num_pathways),
        "spatial_dilations": _per_pathway(cfg, "RESNET.SPATIAL_DILATIONS", num_pathways),
        "stride_1x1": cfg.RESNET.STRIDE_1X1,
        "nonlocal_location": _per_pathway(cfg, "NONLOCAL.LOCATION", num_pathways),
        "nonlocal_group": _per_pathway(cfg, "NONLOCAL.GROUP", num_pathways),
        # PySlowFast reads POOL by pathway index only, so its single-pathway configs keep the
        # two-pathway default; extra entries are ignored the same way here.
        "nonlocal_pool": _per_pathway(cfg, "NONLOCAL.POOL", num_pathways, exact=False),
        "nonlocal_instantiation": cfg.NONLOCAL.INSTANTIATION,
        "roi_resolution": cfg.DETECTION.ROI_XFORM_RESOLUTION,
        "spatial_scale_factor": cfg.DETECTION.SPATIAL_SCALE_FACTOR,
        "aligned": cfg.DETECTION.ALIGNED,
        "dropout_rate": cfg.MODEL.DROPOUT_RATE,
        "head_act": cfg.MODEL.HEAD_ACT,
        "bn_eps": cfg.BN.EPSILON,
        "bn_momentum": cfg.BN.MOMENTUM,
        "fc_init_std": cfg.MODEL.FC_INIT_STD,
        "zero_init_final_bn": cfg.RESNET.ZERO_INIT_FINAL_BN,
    }
    if cfg.RESNET.TEMPORAL_KERNEL_BASIS:
        kwargs["temporal_kernel_basis"] = check_temporal_kernel_basis(
            cfg.RESNET.TEMPORAL_KERNEL_BASIS, num_pathways, "RESNET.TEMPORAL_KERNEL_BASIS"
        )
    if num_pathways == 2:
        kwargs.update(
            alpha=cfg.SLOWFAST.ALPHA,
            beta_inv=cfg.SLOWFAST.BETA_INV,
            fusion_conv_channel_ratio=cfg.SLOWFAST.FUSION_CONV_CHANNEL_RATIO,
            fusion_kernel_size=cfg.SLOWFAST.FUSION_KERNEL_SZ,
        )
    return kwargs


def build_model(cfg: CfgNode) -> nn.Module:
    """The detection network of MODEL.ARCH ("slowfast" -> `SlowFast`, "slow" -> `Slow`),
    randomly initialized as PySlowFast does; load weights with `detection.checkpoint`.

    The model is called as `model(inputs, boxes)`; see `SlowFast.forward` for the contract.
    """
    kwargs = model_kwargs(cfg)
    return _ARCHS[cfg.MODEL.ARCH][0](**kwargs)
