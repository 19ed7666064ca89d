"""Device-side details shared by training and testing: mixed precision and memory layout."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch
from yacs.config import CfgNode

logger = logging.getLogger(__name__)

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(cfg: CfgNode, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for TRAIN.MIXED_PRECISION on `device`, or None for float32.

    Mixed precision is a GPU feature here; on CPU it is ignored with a warning.
    """
    mode = cfg.TRAIN.MIXED_PRECISION
    if mode == "none":
        return None
    if mode not in _AMP_DTYPES:
        raise ValueError(f"TRAIN.MIXED_PRECISION: expected 'none', 'bf16' or 'fp16', got {mode!r}")
    if device.type != "cuda":
        logger.warning("TRAIN.MIXED_PRECISION %s ignored on %s: running in float32", mode, device)
        return None
    return _AMP_DTYPES[mode]


def use_channels_last(device: torch.device, dtype: torch.dtype | None) -> bool:
    """NDHWC (channels_last_3d) lets cuDNN use tensor cores for 3D convolutions in reduced
    precision; on CPU or in float32 it brings nothing, so the default layout is kept."""
    return device.type == "cuda" and dtype is not None


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """torch.autocast for `dtype`, or a no-op context when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def prepare_inputs(
    batch: dict, device: torch.device, channels_last: bool = False
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A loader batch's pathway clips (each [B,3,T,H,W]) and boxes [K,5], moved to `device`."""
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    inputs = [
        x.to(device, non_blocking=True).contiguous(memory_format=fmt) for x in batch["inputs"]
    ]
    return inputs, batch["boxes"].to(device, non_blocking=True)
