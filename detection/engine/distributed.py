"""Thin helpers over torch.distributed for runs launched by torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each process's
environment; `init_distributed` reads them (env:// rendezvous). Without them the run is a
plain single process and every helper here degrades to the obvious single-process answer.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """True when the environment carries torchrun's rank variables."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_distributed() -> bool:
    """True when a process group is initialized (with any world size)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 writes files, logs and progress bars; the other ranks only compute."""
    return get_rank() == 0


def init_distributed(device: torch.device, timeout_minutes: float = 30.0) -> None:
    """Join the process group torchrun set up: NCCL for CUDA devices, gloo on CPU.

    Does nothing for a single process started without torchrun.
    """
    if not launched_by_torchrun() or is_distributed():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        timeout=timedelta(minutes=timeout_minutes),
        device_id=device if device.type == "cuda" else None,
    )


def shutdown_distributed(wait_for_others: bool = True) -> None:
    """Leave the process group, by default after a barrier so no rank exits while others talk."""
    if is_distributed():
        if wait_for_others:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (pickled; fine for per-epoch predictions, not per step)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of `value` over ranks (a new tensor; `value` is left unchanged)."""
    if not is_distributed():
        return value.clone()
    total = value.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
