"""What `tools/train_net.py` and `tools/test_net.py` share: `--config CFG [KEY VALUE ...]`
parsing and one-line reports of user mistakes (exit code 2, no traceback)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from yacs.config import CfgNode

from detection.checkpoint import CheckpointError
from detection.config import ConfigError, load_config
from detection.data.labelmap import LabelMapError
from detection.data.video import VideoReadError
from detection.evaluation.ava_csv import AvaCsvError

USER_ERRORS = (ConfigError, CheckpointError, LabelMapError, VideoReadError, AvaCsvError, FileNotFoundError)


def run_config_tool(description: str, job: Callable[[CfgNode], Any], argv: list[str] | None) -> Any:
    """Parse `--config CFG [KEY VALUE ...]`, run `job(cfg)`; user mistakes exit with code 2."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="YAML config (may use _BASE_)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. OUTPUT_DIR out"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        return job(load_config(args.config, args.opts))
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
