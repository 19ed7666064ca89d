"""Output guards: a tool resolves its inputs and outputs before any work and refuses, in one
line, an output that would destroy an input or another output, or that cannot be written.

Paths are compared by what they name on disk, not by spelling: ``a/../x.mp4`` and ``x.mp4``
are one file, a symbolic link is its target, and two names of one hard-linked file are one file
(same device and inode), because writing either replaces the data both show.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from detection.errors import UserError

PathArg = str | os.PathLike | None
"""A path given to a tool; None for an optional one the user left out."""


class OutputPathError(UserError, ValueError):
    """An output path that is an input, another output, or not writable."""


def check_outputs(inputs: Mapping[str, PathArg], outputs: Mapping[str, PathArg]) -> None:
    """Refuse outputs that are inputs or each other, and outputs that cannot be written.

    `inputs` and `outputs` map the name the user knows a path by (``--video``, ``--csv``,
    ``the config``) to the path; None entries are skipped. Outputs are files: an output that
    is an existing directory, or whose folder is a file, is refused. Each output's folder (or,
    when it does not exist yet, its nearest existing ancestor, where the tool will create it)
    must accept a new file, tried with a real temporary file so a read-only disk is found as
    well as missing permission.

    Raises:
        OutputPathError: naming both options and the path.
    """
    given_inputs = [(name, Path(p)) for name, p in inputs.items() if p is not None]
    seen: list[tuple[str, Path]] = []
    for name, raw in outputs.items():
        if raw is None:
            continue
        path = Path(raw)
        for input_name, input_path in given_inputs:
            if same_file(path, input_path):
                raise OutputPathError(
                    f"{name} {path} is the input {input_name} ({input_path}): "
                    "writing it would destroy the input; choose another output path"
                )
        for other_name, other in seen:
            if same_file(path, other):
                raise OutputPathError(
                    f"{name} {path} and {other_name} {other} are the same file: "
                    "give each output its own path"
                )
        if path.is_dir():
            raise OutputPathError(f"{name} {path} is a directory, expected a file path")
        check_writable_dir(path.parent, f"folder of {name} {path}")
        seen.append((name, path))


def check_writable_dir(directory: PathArg, what: str) -> None:
    """Refuse `directory` (described to the user as `what`) unless a file can be created in it
    or, when it does not exist yet, in its nearest existing ancestor."""
    if directory is None:
        return
    probe = Path(os.path.abspath(directory))
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"{what}: {probe} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".write-check.")
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputPathError(f"{what}: cannot write in {probe} ({reason.lower()})") from e
    os.close(fd)
    os.unlink(name)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether writing `a` would replace the data read from `b`: the same resolved path, or
    one file under two names (hard links, bind mounts)."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass  # one of them does not exist yet: compare resolved names
    return Path(os.path.realpath(a)) == Path(os.path.realpath(b))
