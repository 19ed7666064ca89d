"""`resolve_device(cfg.DEVICE)`: the one place that turns the DEVICE setting into a device."""

from __future__ import annotations

import os

import torch

from detection.errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(UserError, RuntimeError):
    """DEVICE names a device this machine does not have (or is not a known setting)."""


def resolve_device(preference: str, *, set_current: bool = False) -> torch.device:
    """The device for this process from a DEVICE setting: "auto" (CUDA when available), "cpu"
    or "cuda". Under torchrun each process on a machine takes GPU LOCAL_RANK.

    "cuda" without a usable GPU is an error, never a silent fall-back to the CPU.
    `set_current` also makes the GPU the current CUDA device (for NCCL and `.cuda()` calls).
    """
    if preference not in DEVICE_CHOICES:
        raise DeviceError(
            f"DEVICE: expected one of {', '.join(DEVICE_CHOICES)}, got {preference!r}"
        )
    use_cuda = preference == "cuda" or (preference == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("DEVICE is 'cuda' but no CUDA GPU is available; use DEVICE cpu or auto")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if local_rank >= torch.cuda.device_count():
        raise DeviceError(
            f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
            "use --nproc_per_node at most the number of GPUs per machine"
        )
    if set_current:
        torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)
