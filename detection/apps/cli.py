"""What every command-line tool shares: one error policy and the `--config CFG [KEY VALUE ...]`
parser of the config-driven tools.

Error policy: a `detection.errors.UserError` (bad config key, malformed CSV row, bad label map,
unreadable video, missing checkpoint key, ...) or an operating-system error about the user's
paths (missing file, directory given as a file, no permission, disk full, read-only disk) is
printed as one line, ``error: <message>``, at most `MAX_MESSAGE_CHARS` long, and the tool exits
with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from yacs.config import CfgNode

from detection.config import load_config
from detection.errors import MAX_MESSAGE_CHARS, UserError, shorten

T = TypeVar("T")

USER_ERROR_EXIT_CODE = 2

# Operating-system errors caused by the paths the user gave, said in plain words.
_OS_ERROR_WORDS = {
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "disk full",
    errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded",
}


def user_error_message(error: BaseException) -> str | None:
    """The one-line message for a user-caused error, or None when `error` is a bug."""
    if isinstance(error, UserError):
        message = str(error)
    elif isinstance(error, OSError) and error.errno in _OS_ERROR_WORDS:
        where = error.filename if error.filename is not None else ""
        message = (
            f"{where}: {_OS_ERROR_WORDS[error.errno]}" if where else _OS_ERROR_WORDS[error.errno]
        )
    else:
        return None
    return shorten(" ".join(message.split()), MAX_MESSAGE_CHARS)


def exit_on_user_error(error: BaseException) -> NoReturn:
    """Print `error` in one line and exit with code 2 if the user caused it; re-raise otherwise."""
    message = user_error_message(error)
    if message is None:
        raise error
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def run_tool(job: Callable[[], T]) -> T:
    """Run `job()` under the error policy: user errors exit with code 2 in one line."""
    try:
        return job()
    except (UserError, OSError) as e:
        exit_on_user_error(e)


def config_parser(description: str) -> argparse.ArgumentParser:
    """A parser with `--config CFG` and trailing `KEY VALUE` overrides (`args.opts`)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="YAML config (may use _BASE_)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. OUTPUT_DIR out"
    )
    return parser


def run_config_tool(description: str, job: Callable[[CfgNode], Any], argv: list[str] | None) -> Any:
    """Parse `--config CFG [KEY VALUE ...]`, run `job(cfg)` under the error policy."""
    args = config_parser(description).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_tool(lambda: job(load_config(args.config, args.opts)))
