"""Atomic file writes: a reader, or a run resumed after a crash, sees either the old file or
the complete new one, never a truncated file."""

from __future__ import annotations

import os
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
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_directory(path.parent)


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
