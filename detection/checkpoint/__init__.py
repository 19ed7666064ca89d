"""Checkpoints: safe reading of torch and Caffe2 files and loading into our models.

- `read_checkpoint(path) -> dict`: the file's top-level dict, read without running code from it.
- `load_checkpoint(path, model, strict=True, class_map=()) -> LoadReport`: PySlowFast .pyth,
  torch-saved .pkl, Caffe2 .pkl and PyTorchVideo weights into a `detection.models` network; a
  head of another class count is re-initialized, or given the rows that `class_map` names.
"""

from .caffe2 import caffe2_to_pyslowfast_name, convert_caffe2_blobs
from .loader import LoadReport, extract_state_dict, load_checkpoint
from .pytorchvideo import convert_pytorchvideo_state, pytorchvideo_to_pyslowfast_name
from .reader import CheckpointError, read_checkpoint

__all__ = [
    "CheckpointError",
    "LoadReport",
    "caffe2_to_pyslowfast_name",
    "convert_caffe2_blobs",
    "convert_pytorchvideo_state",
    "extract_state_dict",
    "load_checkpoint",
    "pytorchvideo_to_pyslowfast_name",
    "read_checkpoint",
]
