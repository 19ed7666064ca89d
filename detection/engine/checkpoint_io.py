"""Writing training checkpoints in PySlowFast's .pyth layout, atomically, and finding the last one.

A checkpoint is `OUTPUT_DIR/checkpoints/checkpoint_epoch_%05d.pyth` holding
{"epoch": index of the completed epoch (0-based), "model_state", "optimizer_state",
"cfg": the run's config as a YAML string, and "scaler_state" when fp16 AMP is on}; the file
number is epoch + 1, as PySlowFast names them. Only plain tensors, numbers and strings are
stored, so `torch.load(weights_only=True)` (`detection.checkpoint.read_checkpoint`) reads it.
Reading is `detection.checkpoint`'s job; this module only writes and lists.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from detection.utils.atomic import atomic_write

CHECKPOINT_SUBDIR = "checkpoints"
_NAME = re.compile(r"^checkpoint_epoch_(\d{5})\.pyth$")


def checkpoint_dir(output_dir: str | os.PathLike) -> Path:
    """The folder where a run in `output_dir` keeps its checkpoints."""
    return Path(output_dir) / CHECKPOINT_SUBDIR


def checkpoint_path(output_dir: str | os.PathLike, epoch: int) -> Path:
    """Path of the checkpoint written after the 0-based `epoch` completes."""
    return checkpoint_dir(output_dir) / f"checkpoint_epoch_{epoch + 1:05d}.pyth"


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints in `output_dir`, oldest epoch first (temporary files are ignored)."""
    folder = checkpoint_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def last_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint in `output_dir`, or None if there is none."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` to a temporary file in the same folder, fsync, then rename over `path`.

    A reader (or a resumed run after a crash) sees either the old file or the complete new
    one, never a truncated file: `os.replace` is atomic within one filesystem.
    """
    with atomic_write(path, "wb", fsync=True) as f:
        torch.save(obj, f)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def save_checkpoint(
    output_dir: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    cfg: CfgNode,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write the checkpoint for the completed 0-based `epoch`; returns its path.

    State-dict keys are the bare model's (no "module." prefix), as in PySlowFast.
    """
    state = {
        "epoch": epoch,
        "model_state": unwrap(model).state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "cfg": cfg.dump(),
    }
    if scaler is not None and scaler.is_enabled():
        state["scaler_state"] = scaler.state_dict()
    path = checkpoint_path(output_dir, epoch)
    atomic_torch_save(state, path)
    return path
