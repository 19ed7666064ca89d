"""Atomic file writes: a reader, or a run resumed after a crash, sees either the old file or
the complete new one, never a truncated file."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "w", *, fsync: bool = False, **open_kwargs
) -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit rename it over `path`.

    `os.replace` is atomic within one filesystem, hence the temporary file in the same folder.
    On an exception the temporary file is removed and `path` is left as it was. With `fsync`
    the data (and, where the platform allows, the rename) are flushed to disk before returning,
    which checkpoints need to survive a power loss.

    The file gets the mode a plain `open` would give it: the mode of the file it replaces, or
    0o666 less the process umask for a new file (`mkstemp` alone would leave it 0o600).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "w":
        open_kwargs.setdefault("encoding", "utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_directory(path.parent)


def _final_mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def _current_umask() -> int:
    # Reading it from /proc avoids os.umask's set-and-restore, which would briefly give other
    # threads a umask of 0.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
