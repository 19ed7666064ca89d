"""Device-side details shared by training and testing: mixed precision and memory layout."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

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


class InputStager:
    """Model inputs of loader batches on `device`: ``stage(batch)`` -> (pathway inputs, each
    [B, 3, T_p, H, W], boxes [K, 5]), as `detection.data.dataset.collate` describes batches.

    Training batches carry float32 ``inputs``, which are moved. Test batches carry uint8
    ``frames`` with their `InputFormat`: a GPU receives the uint8 frames (a quarter of the
    bytes) and normalizes them itself; on the CPU they are normalized into tensors the stager
    keeps while the clip shape stays (and the batch does not grow), because a fresh batch-sized
    tensor's first touch costs about as much as filling it (447 MB for 8 32x2 clips at short
    side 256). The inputs of one call are therefore overwritten by a later call: use them
    first, as a test loop does.
    """

    def __init__(self, device: torch.device, channels_last: bool = False):
        self.device = device
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self._buffers: list[torch.Tensor] = []
        self._buffers_for: tuple[Any, ...] = ()

    def __call__(self, batch: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
        if "frames" in batch:
            frames, input_format = batch["frames"], batch["input_format"]
            if self.device.type == "cpu":
                # Kept for the clip shape and the largest batch yet: a smaller batch (a video's
                # last) uses the first rows rather than paging in new tensors, twice.
                key = (input_format, tuple(frames.shape[1:]))
                if self._buffers_for != key or len(frames) > len(self._buffers[0]):
                    self._buffers = []  # freed before the next ones are made
                    self._buffers, self._buffers_for = input_format.buffers(frames.shape), key
                out = [buffer[: len(frames)] for buffer in self._buffers]
                inputs = input_format.inputs(frames, out=out)
            else:
                inputs = input_format.inputs(frames.to(self.device, non_blocking=True))
        else:
            inputs = [x.to(self.device, non_blocking=True) for x in batch["inputs"]]
        inputs = [x.contiguous(memory_format=self.memory_format) for x in inputs]
        return inputs, batch["boxes"].to(self.device, non_blocking=True)
