from __future__ import annotations

import os
from collections.abc import Sequence

import yaml
from yacs.config import CfgNode

from detection.errors import UserError

from .defaults import _C

BASE_KEY = "_BASE_"

# Keys kept because PySlowFast's configs set them, with the one value that is implemented and
# why: any other value is refused at load time rather than silently ignored.
_ONLY_VALUE = {
    "MODEL.LOSS_FUNC": (
        "bce",
        "sigmoid binary cross-entropy, what AVA's multi-label actions use",
    ),
}


class ConfigError(UserError, ValueError):
    """A config file or override names an unknown key, or gives a value of the wrong type or
    one that is not implemented."""


def get_cfg() -> CfgNode:
    """A fresh, mutable copy of the defaults (see `detection/config/defaults.py`)."""
    return _C.clone()


def _read_yaml_with_bases(path: str, seen: tuple[str, ...] = ()) -> dict:
    """Load `path`; a `_BASE_` entry (relative to the file) is loaded first and overridden."""
    path = os.path.abspath(path)
    if path in seen:
        raise ConfigError(f"{path}: _BASE_ cycle through {' -> '.join(seen)}")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
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


def _check_implemented(cfg: CfgNode, path: str | None, opts: Sequence[str]) -> None:
    """Refuse a value of a key in `_ONLY_VALUE` other than the one implemented, naming where it
    was set (the override, else the file)."""
    for key, (value, why) in _ONLY_VALUE.items():
        section, name = key.split(".")
        got = cfg[section][name]
        if got != value:
            where = "command-line override" if key in opts[::2] else path or "config"
            raise ConfigError(f"{where}: {key}: only {value!r} ({why}) is implemented, got {got!r}")


def load_config(path: str | None = None, opts: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at `path` (if any), then `KEY VALUE` pairs from `opts`.

    Values that are valid in PySlowFast but not implemented here (MODEL.LOSS_FUNC other than
    "bce") are a `ConfigError`. The result is frozen so that no module changes the run's
    settings behind the user's back.
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
    cfg.freeze()
    return cfg
