"""`load_checkpoint(path, model)`: weights from any supported format into our model, with a report
of what matched."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .caffe2 import convert_caffe2_blobs
from .pytorchvideo import convert_pytorchvideo_state, is_pytorchvideo_state
from .reader import CheckpointError, read_checkpoint

# Names listed per problem in an error message before it says "and N more".
_MAX_NAMES = 20


@dataclass
class LoadReport:
    """What `load_checkpoint` did. `mismatched` holds (name, checkpoint shape, model shape)."""

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """One line per kind of problem, naming the keys."""

        def names(items: list) -> str:
            shown = ", ".join(str(x) for x in items[:_MAX_NAMES])
            more = len(items) - _MAX_NAMES
            return shown + (f" and {more} more" if more > 0 else "")

        lines = []
        if self.missing:
            lines.append(
                f"missing from the checkpoint ({len(self.missing)}): {names(self.missing)}"
            )
        if self.unexpected:
            lines.append(f"not in the model ({len(self.unexpected)}): {names(self.unexpected)}")
        if self.mismatched:
            shapes = [f"{n} {tuple(c)} vs model {tuple(m)}" for n, c, m in self.mismatched]
            lines.append(f"shape mismatch ({len(shapes)}): {names(shapes)}")
        return "\n".join(lines)


def extract_state_dict(
    content: dict[str, Any], path: str
) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """The network weights in a checkpoint's top-level dict, renamed to our names.

    Returns (state dict, format name, source names that map to no parameter).
    """
    unknown: list[str] = []
    if "blobs" in content and isinstance(content["blobs"], dict):
        state, unknown = convert_caffe2_blobs(content["blobs"])
        return state, "caffe2", unknown
    if "model_state" in content and isinstance(content["model_state"], dict):
        state, fmt = content["model_state"], "pyslowfast"
    elif content and all(isinstance(v, torch.Tensor) for v in content.values()):
        state, fmt = content, "state_dict"
    else:
        raise CheckpointError(
            f"{path}: no weights found; expected 'model_state' (PySlowFast), 'blobs' (Caffe2) or a "
            f"state dict, got top-level keys {sorted(map(str, content))[:_MAX_NAMES]}"
        )
    # Saved from DataParallel / DistributedDataParallel.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    if is_pytorchvideo_state(state):
        state, unknown = convert_pytorchvideo_state(state)
        fmt = "pytorchvideo"
    return state, fmt, unknown


def load_checkpoint(path: str | os.PathLike, model: nn.Module, strict: bool = True) -> LoadReport:
    """Load weights from `path` into `model` (in place) and report what matched.

    Reads PySlowFast .pyth / torch-saved .pkl files ({"model_state": ...}, also with the
    "module." prefix of DataParallel), Caffe2 .pkl files ({"blobs": ...}, blob names mapped to
    ours), PyTorchVideo's slowfast_r50_detection weights, and plain state dicts; see
    `read_checkpoint` for how files are read safely.

    With `strict`, any missing, unexpected or mis-shaped parameter raises `CheckpointError` naming
    the file and the keys, and the model is left untouched. Otherwise the matching parameters
    are loaded and the report lists the rest. BN's `num_batches_tracked` counters are never
    required (Caffe2 files have none).
    """
    path = os.fspath(path)
    state, fmt, unknown = extract_state_dict(read_checkpoint(path), path)
    own = model.state_dict()
    report = LoadReport(path=path, format=fmt, unexpected=list(unknown))
    to_load: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name not in own:
            report.unexpected.append(name)
        elif tuple(value.shape) != tuple(own[name].shape):
            report.mismatched.append((name, tuple(value.shape), tuple(own[name].shape)))
        else:
            to_load[name] = value
    report.missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if strict and not report.ok:
        raise CheckpointError(f"{path} ({fmt}) does not fit the model:\n{report.problems()}")
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report
