"""Safe reading of checkpoint files: torch files through `torch.load(weights_only=True)`, Caffe2
pickles through an unpickler that admits numpy arrays and nothing else.

Checkpoints are untrusted input: a pickle can run any code while it loads, so no file is ever
given to an unrestricted unpickler.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from typing import Any

import numpy as np
import torch

from detection.errors import UserError

# The first object of a legacy (non-zip) torch.save file; see torch/serialization.py.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# Globals a Caffe2 checkpoint ({"blobs": {name: ndarray}}) needs to unpickle: numpy's array
# and scalar rebuilders, dtypes, and `_codecs.encode`, which protocol-2 pickles written by
# Python 3 use for raw bytes. None of them can reach the file system or run code.
_CAFFE2_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint cannot be read safely, has an unknown layout, or does not fit the model."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader, path: str) -> None:
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _CAFFE2_ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise CheckpointError(
            f"refused to load {self._path}: it asks for {module}.{name}, and a Caffe2 checkpoint "
            "may only hold numpy arrays (the file is corrupt or unsafe)"
        )


def _to_tensors(value: Any) -> Any:
    """numpy arrays (also inside dicts) -> torch tensors; everything else as it is."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: _to_tensors(v) for k, v in value.items()}
    return value


def _torch_load(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"refused to load {path}: torch.load(weights_only=True) rejected it ({first_line}); "
            "checkpoints may hold tensors, numbers, strings and containers only"
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"cannot read {path} as a torch checkpoint: {e}") from e


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file safely and return its top-level dict.

    - torch files (`torch.save`, zip or legacy format, whatever the extension: PySlowFast .pyth,
      the R101 AVA zoo .pkl files) are loaded with `weights_only=True` on the CPU, and the whole
      dict comes back as saved, e.g. {"epoch", "model_state", "optimizer_state", "cfg"}. Store a
      config in it as a YAML string (`cfg.dump()`): objects of other classes are refused.
    - Caffe2 pickles ({"blobs": {name: ndarray}, ...}, latin1) are read by an unpickler that
      admits numpy arrays only; arrays come back as tensors.

    Raises `CheckpointError` (naming the file) for a missing or unreadable file, a pickle that
    asks for anything else (e.g. `os.system`), or content that is not a dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    zipped = zipfile.is_zipfile(path)
    if magic == b"PK\x03\x04" and not zipped:
        raise CheckpointError(
            f"{path}: truncated or damaged checkpoint (a torch zip file without its end, "
            "e.g. an interrupted copy or download)"
        )
    if zipped:
        content = _torch_load(path)
    else:
        with open(path, "rb") as f:
            try:
                first = _NumpyOnlyUnpickler(f, path).load()
            except CheckpointError:
                raise
            except Exception as e:  # any malformed pickle: report it, never fall back
                raise CheckpointError(f"cannot read {path} as a checkpoint: {e!r}") from e
        if isinstance(first, int) and first == _TORCH_LEGACY_MAGIC:
            content = _torch_load(path)
        else:
            content = _to_tensors(first)
    if not isinstance(content, dict):
        raise CheckpointError(
            f"{path}: expected a dict at the top level of the checkpoint, "
            f"got {type(content).__name__}"
        )
    return content
