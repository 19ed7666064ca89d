"""Export of the action detector to ONNX and OpenVINO IR, and runtimes for the exported files.

- `export_onnx(cfg, output, weights=...)`: the eval-mode backbone + RoI head as ONNX, inputs
  `slow` [B,3,T/alpha,H,W] (+ `fast` [B,3,T,H,W]) and `boxes` [K,5], output `scores` [K,C]
  (B and K dynamic); `detection.export.onnx` documents the contract and the normalization. The
  graph is laid out for ONNX Runtime (`detection.export.layout`: 3D convolutions as 2D ones);
  `layout=False` keeps the model's 3D convolutions, which OpenVINO runs faster.
- `convert_to_openvino(onnx_path, xml_path)`: an ONNX export as OpenVINO IR (.xml + .bin, fp32).
- `ExportedDetector(path, backend)`: runs a file as `runtime([slow, fast], boxes) -> [K, C]`.
- `load_runtime(cfg, weights, backend)` / `cached_export`: export on first use into a cache
  keyed by a hash of the config, the weights' bytes and the clip size; `CachedDetector` does so
  for each frame size it is called with; `runtime_from_config(cfg, weights)` the one
  MODEL.RUNTIME / MODEL.EXPORT_FILE / MODEL.EXPORT_DIR name.
- `quantize_onnx(onnx, output, feeds)`: int8 (QDQ) post-training quantization, run by ONNX
  Runtime and OpenVINO (MODEL.RUNTIME onnxruntime_int8 / openvino_int8).

Needs the `export` extra (onnx, onnxscript, onnxruntime, openvino).
"""

from .onnx import (
    IO_DOC,
    OPSET,
    ClipShape,
    ExportConfigError,
    ExportDependencyError,
    export_onnx,
    normalization,
)
from .openvino import convert_to_openvino
from .quantize import calibration_feeds, quantize_onnx, random_feeds
from .runtime import (
    BACKENDS,
    RUNTIMES,
    CachedDetector,
    ExportedDetector,
    ExportedInputError,
    RuntimeConfigError,
    cached_export,
    check_runtime,
    export_cache_path,
    load_runtime,
    runtime_from_config,
)

__all__ = [
    "BACKENDS",
    "RUNTIMES",
    "CachedDetector",
    "IO_DOC",
    "OPSET",
    "ClipShape",
    "ExportConfigError",
    "ExportDependencyError",
    "ExportedDetector",
    "ExportedInputError",
    "RuntimeConfigError",
    "cached_export",
    "calibration_feeds",
    "check_runtime",
    "convert_to_openvino",
    "export_cache_path",
    "export_onnx",
    "load_runtime",
    "normalization",
    "quantize_onnx",
    "random_feeds",
    "runtime_from_config",
]
