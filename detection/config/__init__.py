"""Configuration: `get_cfg()` returns the documented defaults; `load_config` merges YAML files
(with `_BASE_` inheritance) and `KEY VALUE` overrides on top of them."""

from .config import ConfigError, get_cfg, load_config, merge_yaml

__all__ = ["ConfigError", "get_cfg", "load_config", "merge_yaml"]
