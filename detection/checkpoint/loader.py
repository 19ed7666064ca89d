"""`load_checkpoint(path, model)`: weights from any supported format into our model, with a report
of what matched."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .caffe2 import convert_caffe2_blobs
from .pytorchvideo import convert_pytorchvideo_state, is_pytorchvideo_state
from .reader import CheckpointError, read_checkpoint

# Names listed per problem in an error message before it says "and N more".
_MAX_NAMES = 20
# The RoI head's classifier: row i of both scores action id i + 1.
HEAD = "head.projection"
HEAD_WEIGHT = f"{HEAD}.weight"
HEAD_BIAS = f"{HEAD}.bias"


@dataclass
class LoadReport:
    """What `load_checkpoint` did. `mismatched` holds (name, checkpoint shape, model shape)."""

    path: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    # What happened to the head when its class count differs from the model's or a class map
    # was given, e.g. "head.projection: checkpoint 80 classes, model 5: re-initialized"; "" else.
    head: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def problems(self) -> str:
        """One line per kind of problem, naming the keys."""

        def names(items: list) -> str:
            shown = ", ".join(str(x) for x in items[:_MAX_NAMES])
            more = len(items) - _MAX_NAMES
            return shown + (f" and {more} more" if more > 0 else "")

        lines = [self.head] if self.head else []
        if self.missing:
            lines.append(
                f"missing from the checkpoint ({len(self.missing)}): {names(self.missing)}"
            )
        if self.unexpected:
            lines.append(f"not in the model ({len(self.unexpected)}): {names(self.unexpected)}")
        # The head's own line (above) already says why its tensors do not fit.
        other = [m for m in self.mismatched if not (self.head and m[0] in (HEAD_WEIGHT, HEAD_BIAS))]
        if other:
            shapes = [f"{n} {tuple(c)} vs model {tuple(m)}" for n, c, m in other]
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


def _head_classes(state: dict[str, torch.Tensor]) -> int | None:
    """Rows of the head's classifier in `state` (its class count), None without a 2-d head."""
    weight = state.get(HEAD_WEIGHT)
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def _copy_head_rows(
    state: dict[str, torch.Tensor],
    own: dict[str, torch.Tensor],
    class_map: Sequence[Sequence[int]],
    path: str,
) -> tuple[dict[str, torch.Tensor], str]:
    """The model's head tensors with rows ``new_id - 1`` replaced by the checkpoint's rows
    ``checkpoint_id - 1`` for each (new_id, checkpoint_id) of `class_map`, and the report line."""
    source, target = _head_classes(state), _head_classes(own)
    if source is None or target is None or HEAD_BIAS not in state:
        raise CheckpointError(
            f"{path}: a class map needs {HEAD_WEIGHT} and {HEAD_BIAS} in the checkpoint and "
            "the model"
        )
    if state[HEAD_WEIGHT].shape[1:] != own[HEAD_WEIGHT].shape[1:]:
        raise CheckpointError(
            f"{path}: {HEAD_WEIGHT} takes {tuple(state[HEAD_WEIGHT].shape[1:])} features, the "
            f"model's {tuple(own[HEAD_WEIGHT].shape[1:])}: its rows cannot be copied"
        )
    for new_id, old_id in class_map:
        if not 1 <= new_id <= target:
            raise CheckpointError(
                f"class map [{new_id}, {old_id}]: new id {new_id} is not in 1..{target} "
                f"(the model's {HEAD} has {target} classes)"
            )
        if not 1 <= old_id <= source:
            raise CheckpointError(
                f"class map [{new_id}, {old_id}]: checkpoint id {old_id} is not in 1..{source} "
                f"({path} has {source} classes in {HEAD})"
            )
    weight, bias = own[HEAD_WEIGHT].clone(), own[HEAD_BIAS].clone()
    new_rows = torch.tensor([n - 1 for n, _ in class_map], dtype=torch.long)
    old_rows = torch.tensor([o - 1 for _, o in class_map], dtype=torch.long)
    weight[new_rows] = state[HEAD_WEIGHT][old_rows].to(weight.dtype)
    bias[new_rows] = state[HEAD_BIAS][old_rows].to(bias.dtype)
    pairs = ", ".join(f"{n}<-{o}" for n, o in class_map)
    fresh = target - len(class_map)
    line = (
        f"{HEAD}: checkpoint {source} classes, model {target}: rows copied (new id <- "
        f"checkpoint id) {pairs}; {fresh} re-initialized"
    )
    return {HEAD_WEIGHT: weight, HEAD_BIAS: bias}, line


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    strict: bool = True,
    class_map: Sequence[Sequence[int]] = (),
) -> LoadReport:
    """Load weights from `path` into `model` (in place) and report what matched.

    Reads PySlowFast .pyth / torch-saved .pkl files ({"model_state": ...}, also with the
    "module." prefix of DataParallel), Caffe2 .pkl files ({"blobs": ...}, blob names mapped to
    ours), PyTorchVideo's slowfast_r50_detection weights, and plain state dicts; see
    `read_checkpoint` for how files are read safely.

    With `strict`, any missing, unexpected or mis-shaped parameter raises `CheckpointError` naming
    the file and the keys, and the model is left untouched. Otherwise the matching parameters
    are loaded and the report lists the rest. BN's `num_batches_tracked` counters are never
    required (Caffe2 files have none).

    A head (`head.projection`, row i = action id i + 1) with another number of classes than the
    model's is not loaded: the model keeps its own rows, and `report.head` says so. With
    `class_map`, (new_id, checkpoint_id) pairs (1-based), the head's rows new_id - 1 become the
    checkpoint's rows checkpoint_id - 1 (weight and bias) and the other rows stay the model's;
    an id outside either head is a `CheckpointError` naming the pair.
    """
    path = os.fspath(path)
    state, fmt, unknown = extract_state_dict(read_checkpoint(path), path)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(
                f"{path}: {name} holds NaN or infinite values; the weights are unusable "
                "(a diverged training run?)"
            )
    own = model.state_dict()
    report = LoadReport(path=path, format=fmt, unexpected=list(unknown))
    to_load: dict[str, torch.Tensor] = {}
    if class_map:
        head, report.head = _copy_head_rows(state, own, class_map, path)
        to_load.update(head)
        state = {k: v for k, v in state.items() if k not in head}
    elif None not in (_head_classes(state), _head_classes(own)):
        source, target = _head_classes(state), _head_classes(own)
        if source != target:
            report.head = f"{HEAD}: checkpoint {source} classes, model {target}: re-initialized"
    for name, value in state.items():
        if name not in own:
            report.unexpected.append(name)
        elif tuple(value.shape) != tuple(own[name].shape):
            report.mismatched.append((name, tuple(value.shape), tuple(own[name].shape)))
        else:
            to_load[name] = value
    report.missing = [
        k
        for k in own
        if k not in state and k not in to_load and not k.endswith("num_batches_tracked")
    ]
    if strict and not report.ok:
        raise CheckpointError(f"{path} ({fmt}) does not fit the model:\n{report.problems()}")
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report
