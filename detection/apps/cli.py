"""What every command-line tool shares: one error policy, an argument parser that follows it,
and the `--config CFG [KEY VALUE ...]` parser of the config-driven tools.

Error policy: a `detection.errors.UserError` (bad config key, malformed CSV row, bad label map,
unreadable video, missing checkpoint key, ...), an operating-system error about the user's
paths (missing file, directory given as a file, no permission, disk full, read-only disk) or a
bad command-line option is printed as one line, ``error: <message>``, at most
`MAX_MESSAGE_CHARS` long, and the tool exits with code 2. Anything else is a bug and keeps its
traceback.

A tool's logic lives in ``detection/apps/<tool>.py`` as ``main(argv) -> int``, which parses its
arguments with `tool_parser` (or `run_config_tool`), runs its job under `run_tool` and prints
the result; ``tools/<tool>.py`` only calls it. Before any expensive step a tool resolves its
inputs and outputs with `detection.utils.paths.check_outputs` (an output that is an input, two
outputs that are one file, an unwritable folder are refused in one line).
"""

from __future__ import annotations

import argparse
import errno
import logging
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from detection.errors import MAX_MESSAGE_CHARS, UserError, shorten

if TYPE_CHECKING:
    from yacs.config import CfgNode

T = TypeVar("T")

USER_ERROR_EXIT_CODE = 2

# Operating-system errors caused by the paths the user gave, said in plain words.
_OS_ERROR_WORDS = {
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "not a directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "disk full",
    errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded",
}

# The path errors our own code raises with a sentence instead of an errno, e.g.
# ``FileNotFoundError("no weights to test: ...")``.
_PATH_ERROR_TYPES = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)

# torch's DataLoader re-raises a worker's exception in the main process as the same type with
# the message "Caught X in DataLoader worker process N.\nOriginal Traceback ...": the user's
# message is the last line of that traceback, after "module.X: ".
_WORKER_PREFIX = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s*Original ")


def user_error_message(error: BaseException) -> str | None:
    """The one-line message for a user-caused error, or None when `error` is a bug."""
    if isinstance(error, UserError):
        message = _unwrap_worker_traceback(error, str(error))
    elif isinstance(error, OSError) and error.errno in _OS_ERROR_WORDS:
        paths = [p for p in (error.filename, error.filename2) if p is not None]
        where = " -> ".join(str(p) for p in paths)
        words = _OS_ERROR_WORDS[error.errno]
        message = f"{where}: {words}" if where else words
    elif isinstance(error, _PATH_ERROR_TYPES) and error.errno is None and str(error):
        message = _unwrap_worker_traceback(error, str(error))
    else:
        return None
    return shorten(" ".join(message.split()), MAX_MESSAGE_CHARS)


def _unwrap_worker_traceback(error: BaseException, message: str) -> str:
    if not _WORKER_PREFIX.match(message):
        return message
    cls = type(error)
    for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
        _, sep, original = message.rpartition(f"\n{name}: ")
        if sep:
            return original
    return message


def exit_on_user_error(error: BaseException) -> NoReturn:
    """Print `error` in one line and exit with code 2 if the user caused it; re-raise otherwise."""
    message = user_error_message(error)
    if message is None:
        raise error
    sys.stdout.flush()  # what the tool printed before the error comes before it
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT_CODE)


def run_tool(job: Callable[[], T]) -> T:
    """Run `job()` under the error policy: user errors exit with code 2 in one line."""
    try:
        return job()
    except (UserError, OSError) as e:
        exit_on_user_error(e)


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse under the error policy: a bad or missing option is one line, ``error: ...``,
    pointing at ``--help`` (instead of argparse's usage block), and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        """argparse's, then: an option given after the trailing ``KEY VALUE`` overrides
        (``args.opts``) is an error. argparse hands everything after the first override to
        them, so ``MODEL.WEIGHTS w.pkl --output out`` would otherwise fail later as an unknown
        config key "--output", or, worse, take an option's value as a config value."""
        parsed = super().parse_args(args, namespace)
        overrides = getattr(parsed, "opts", None) or []
        for key in overrides[::2]:
            if key.startswith("--") or (key.startswith("-") and key[1:2].isalpha()):
                self.error(
                    f"option {key} comes after the KEY VALUE overrides "
                    f"({' '.join(overrides[:2])} ...); put options before them"
                )
        return parsed


def tool_parser(description: str) -> ToolArgumentParser:
    """A parser for a tool whose `description` (kept as written) says what it reads and
    writes."""
    return ToolArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def config_parser(description: str) -> ToolArgumentParser:
    """A parser with `--config CFG` and trailing `KEY VALUE` overrides (`args.opts`)."""
    parser = tool_parser(description)
    parser.add_argument("--config", required=True, help="YAML config (may use _BASE_)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, e.g. OUTPUT_DIR out"
    )
    return parser


def run_config_tool(description: str, job: Callable[[CfgNode], Any], argv: list[str] | None) -> Any:
    """Parse `--config CFG [KEY VALUE ...]`, run `job(cfg)` under the error policy.

    The config is read and checked before `job` runs, so a bad file or key fails at once."""
    # Imported here: tools without a config (eval_ava) need not pay for yacs at start-up.
    from detection.config import load_config

    args = config_parser(description).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return run_tool(lambda: job(load_config(args.config, args.opts)))
