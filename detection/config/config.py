from __future__ import annotations

import os
from collections.abc import Sequence

import yaml
from yacs.config import CfgNode

from detection.errors import UserError

from .defaults import _C

BASE_KEY = "_BASE_"

# Keys whose values are a closed set here, with what each implemented value means: any other
# value is refused at load time rather than silently ignored (PySlowFast accepts more losses).
RUNTIME_CHOICES = {
    "torch": "PyTorch",
    "onnxruntime": "the ONNX export on ONNX Runtime (CPU)",
    "openvino": "the ONNX export on OpenVINO (CPU)",
    "onnxruntime_int8": "its int8 quantization on ONNX Runtime (CPU)",
    "openvino_int8": "its int8 quantization on OpenVINO (CPU)",
}
"""What MODEL.RUNTIME may name (`detection.export.runtime` runs them): PyTorch itself, an
engine on the fp32 export, or an engine on its int8 quantization ("{engine}_int8")."""

_CHOICES = {
    "MODEL.LOSS_FUNC": {
        "bce": "sigmoid binary cross-entropy, what AVA's multi-label actions use",
        "focal": "sigmoid focal loss, multi-label",
        "softmax": "cross-entropy over mutually exclusive classes, one action per box",
    },
    "MODEL.RUNTIME": RUNTIME_CHOICES,
}
# Eval-time head activations that fit each loss: softmax scores for a softmax-trained head,
# sigmoid scores for the multi-label losses; "none" (raw logits) fits all of them.
_HEAD_ACT_FOR_LOSS = {
    "bce": ("sigmoid", "none"),
    "focal": ("sigmoid", "none"),
    "softmax": ("softmax", "none"),
}


class ConfigError(UserError, ValueError):
    """A config file or override names an unknown key, or gives a value of the wrong type or
    one that is not implemented."""


def get_cfg() -> CfgNode:
    """A fresh, mutable copy of the defaults (see `detection/config/defaults.py`)."""
    return _C.clone()


class _DuplicateKey(Exception):
    """A mapping of a YAML file gives `key` (dotted from the top) on 1-based `line` and again
    on `first_line`; turned into a `ConfigError` naming the file where the file is known."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(key, line, first_line)
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (what yacs uses) that refuses a key given twice in one mapping, which
    plain YAML loading resolves silently by keeping the last value. Keys merged in with ``<<``
    may be overridden, as YAML intends."""

    def construct_document(self, node: yaml.Node) -> object:
        self._check_unique_keys(node, "")
        return super().construct_document(node)

    def _check_unique_keys(self, node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._check_unique_keys(item, f"{prefix}[{i}]")
        if not isinstance(node, yaml.MappingNode):
            return
        first_lines: dict[object, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            name = f"{prefix}.{key}" if prefix else str(key)
            line = key_node.start_mark.line + 1
            try:
                if key in first_lines:
                    raise _DuplicateKey(name, line, first_lines[key])
                first_lines[key] = line
            except TypeError:  # an unhashable key: the constructor reports it
                continue
            self._check_unique_keys(value_node, name)


def _read_yaml_with_bases(path: str, seen: tuple[str, ...] = ()) -> dict:
    """Load `path`; a `_BASE_` entry (relative to the file) is loaded first and overridden."""
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: _BASE_ cycle through {' -> '.join(seen)}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.load(f, Loader=_UniqueKeyLoader) or {}
        except _DuplicateKey as e:
            raise ConfigError(
                f"{path}:{e.line}: {e.key} given twice (first on line {e.first_line}); keep one"
            ) from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
    merged = _read_yaml_with_bases(base_path, seen + (path,))
    _deep_update(merged, data)
    return merged


def _deep_update(dst: dict, src: dict) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _deep_update(dst[key], value)
        else:
            dst[key] = value


def merge_yaml(cfg: CfgNode, path: str) -> CfgNode:
    """Merge a YAML file (and its `_BASE_` chain) into `cfg`; unknown keys are an error."""
    data = _read_yaml_with_bases(path)
    try:
        cfg.merge_from_other_cfg(CfgNode(data))
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{path}: {e.args[0] if e.args else e}") from e
    return cfg


def _where(key: str, path: str | None, opts: Sequence[str]) -> str:
    """Where `key` was set last: the command-line override, else the file."""
    return "command-line override" if key in opts[::2] else path or "config"


def _check_implemented(cfg: CfgNode, path: str | None, opts: Sequence[str]) -> None:
    """Refuse a value of a key in `_CHOICES` that is not implemented, naming where it was set."""
    for key, choices in _CHOICES.items():
        section, name = key.split(".")
        got = cfg[section][name]
        if got not in choices:
            known = "; ".join(f"{value!r} ({why})" for value, why in choices.items())
            raise ConfigError(
                f"{_where(key, path, opts)}: {key}: only {known} are implemented, got {got!r}"
            )


def _check_training(cfg: CfgNode, path: str | None, opts: Sequence[str]) -> None:
    """Loss vs head activation, focal parameters and TRAIN.CHECKPOINT_CLASS_MAP."""
    loss, act = cfg.MODEL.LOSS_FUNC, cfg.MODEL.HEAD_ACT
    if act not in _HEAD_ACT_FOR_LOSS[loss]:
        key = "MODEL.HEAD_ACT" if "MODEL.HEAD_ACT" in opts[::2] else "MODEL.LOSS_FUNC"
        raise ConfigError(
            f"{_where(key, path, opts)}: MODEL.LOSS_FUNC {loss!r} trains scores that "
            f"MODEL.HEAD_ACT {act!r} does not produce at test time: set MODEL.HEAD_ACT to "
            f"{' or '.join(map(repr, _HEAD_ACT_FOR_LOSS[loss]))}"
        )
    alpha, gamma = cfg.MODEL.FOCAL_ALPHA, cfg.MODEL.FOCAL_GAMMA
    if not (0.0 <= alpha <= 1.0 or alpha == -1):
        raise ConfigError(
            f"{_where('MODEL.FOCAL_ALPHA', path, opts)}: MODEL.FOCAL_ALPHA must be in [0, 1] "
            f"or -1 (no weighting), got {alpha}"
        )
    if gamma < 0:
        raise ConfigError(
            f"{_where('MODEL.FOCAL_GAMMA', path, opts)}: MODEL.FOCAL_GAMMA must be >= 0, "
            f"got {gamma}"
        )
    _check_class_map(cfg, _where("TRAIN.CHECKPOINT_CLASS_MAP", path, opts))


def _check_class_map(cfg: CfgNode, where: str) -> None:
    """TRAIN.CHECKPOINT_CLASS_MAP: [new_id, checkpoint_id] pairs of ids >= 1, new ids within
    MODEL.NUM_CLASSES and each named once, and a checkpoint to take the rows from."""
    key = "TRAIN.CHECKPOINT_CLASS_MAP"
    pairs = cfg.TRAIN.CHECKPOINT_CLASS_MAP
    if not pairs:
        return
    if not cfg.TRAIN.CHECKPOINT_FILE_PATH:
        raise ConfigError(f"{where}: {key} is set but TRAIN.CHECKPOINT_FILE_PATH is empty")
    seen: set[int] = set()
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in pair)
        ):
            raise ConfigError(
                f"{where}: {key}: expected [new_id, checkpoint_id] pairs of ids >= 1, got {pair!r}"
            )
        new_id = pair[0]
        if new_id > cfg.MODEL.NUM_CLASSES:
            raise ConfigError(
                f"{where}: {key}: new id {new_id} in {list(pair)} is not in "
                f"1..{cfg.MODEL.NUM_CLASSES} (MODEL.NUM_CLASSES)"
            )
        if new_id in seen:
            raise ConfigError(f"{where}: {key}: new id {new_id} is mapped twice")
        seen.add(new_id)


def load_config(path: str | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at `path` (if any), then `KEY VALUE` pairs from `opts`.

    Values that are valid in PySlowFast but not implemented here (a MODEL.LOSS_FUNC other than
    "bce", "focal" or "softmax"), a MODEL.HEAD_ACT that does not fit the loss, and malformed
    TRAIN.CHECKPOINT_CLASS_MAP entries are a `ConfigError`. The result is frozen so that no
    module changes the run's settings behind the user's back.
    """
    cfg = get_cfg()
    if path:
        merge_yaml(cfg, path)
    if opts:
        if len(opts) % 2:
            raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd number: {list(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"command-line override: {e.args[0] if e.args else e}") from e
    _check_implemented(cfg, path, opts)
    _check_training(cfg, path, opts)
    cfg.freeze()
    return cfg
