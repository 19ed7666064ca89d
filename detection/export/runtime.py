"""Run an exported detector with ONNX Runtime or OpenVINO through the PyTorch model's call.

    runtime = load_runtime(cfg, weights="model.pyth", backend="openvino")
    scores = runtime([slow, fast], boxes)        # torch.Tensor [K, NUM_CLASSES]

`load_runtime` exports on first use into a cache (`cached_export`): beside the weights, or in
`cache_dir`, under a name keyed by a hash of the config dump, the weights file's bytes and the
clip size, so a changed config or checkpoint gets its own file and an unchanged one is reused.
`ExportedDetector(path)` runs a file exported by `detection.export` (`.onnx`, or `.xml` for
OpenVINO). `CachedDetector(cfg, weights, backend)` takes clips of any frame size, as the test
loader gives them (short side DATA.TEST_CROP_SIZE, long side by the video's aspect): it loads
the cached export of each size it meets, exporting it on first use. Inputs, outputs and the
pixel normalization: see `detection.export.onnx`.

`runtime_from_config(cfg, weights)` is what test_net, the demo and the streaming engine run
when MODEL.RUNTIME is not "torch": one of `RUNTIMES`, the "_int8" ones on the int8 quantization
of the export (`detection.export.quantize`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from yacs.config import CfgNode

from detection.config.config import RUNTIME_CHOICES
from detection.errors import UserError

from .onnx import EXPORT_FORMAT_VERSION, ClipShape, export_onnx, file_sha256, require
from .openvino import convert_to_openvino
from .quantize import Feed, calibration_feeds, quantize_onnx

# Engines that run an exported file.
BACKENDS = ("onnxruntime", "openvino")
# What MODEL.RUNTIME names, listed once with the config's check of the key: PyTorch itself, an
# engine on the fp32 export, or an engine on its int8 (QDQ) quantization ("{engine}_int8").
INT8_SUFFIX = "_int8"
RUNTIMES = tuple(RUNTIME_CHOICES)
# Where `cached_export` gets int8 calibration feeds for a clip size.
Calibration = Callable[[ClipShape], Sequence[Feed]]


class ExportedInputError(UserError, ValueError):
    """Inputs that do not fit the exported model."""


class RuntimeConfigError(UserError, ValueError):
    """MODEL.RUNTIME / MODEL.EXPORT_FILE name something that cannot run."""


def check_runtime(runtime: str) -> str:
    """`runtime` if it is one of `RUNTIMES`, else a `RuntimeConfigError` naming the key."""
    if runtime not in RUNTIMES:
        raise RuntimeConfigError(
            f"MODEL.RUNTIME: expected one of {', '.join(RUNTIMES)}, got {runtime!r}"
        )
    return runtime


def engine_of(runtime: str) -> str:
    """The engine that runs `runtime`'s file: "openvino_int8" -> "openvino"."""
    return check_runtime(runtime).removesuffix(INT8_SUFFIX)


@dataclass(frozen=True)
class _Session:
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    input_names: tuple[str, ...]
    # Per clip input, its fixed dims [3, T_p, H, W] (the batch dim is dynamic).
    clip_shapes: dict[str, tuple[int, ...]]
    num_classes: int


class ExportedDetector:
    """An exported detector, called like the PyTorch model: `runtime(inputs, boxes)`.

    Args:
        path: an ONNX file, or an OpenVINO `.xml` (backend "openvino" only).
        backend: "onnxruntime" or "openvino" (which reads ONNX files too).
        num_threads: intra-op CPU threads (None: the runtime's default, all cores).
    """

    def __init__(
        self, path: str | os.PathLike, backend: str = "onnxruntime", num_threads: int | None = None
    ) -> None:
        if backend not in BACKENDS:
            raise ExportedInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no exported model at {self.path}")
        if backend == "onnxruntime" and self.path.suffix == ".xml":
            raise ExportedInputError(f"{self.path} is OpenVINO IR: use backend 'openvino'")
        self.backend = backend
        opener = _onnxruntime_session if backend == "onnxruntime" else _openvino_session
        self._session = opener(self.path, num_threads)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The clip inputs then "boxes", e.g. ("slow", "fast", "boxes")."""
        return self._session.input_names

    @property
    def num_classes(self) -> int:
        return self._session.num_classes

    def __call__(self, inputs: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """inputs: one clip per pathway, as `PathwayResNet.forward` takes them; boxes [K, 5] =
        (batch index, x1, y1, x2, y2) in input pixels -> scores [K, NUM_CLASSES] float32 (CPU)."""
        session = self._session
        clip_names = session.input_names[:-1]
        if len(inputs) != len(clip_names):
            raise ExportedInputError(
                f"{self.path.name} takes {len(clip_names)} clip tensors ({', '.join(clip_names)}),"
                f" got {len(inputs)}"
            )
        feed = {}
        for name, x in zip(clip_names, inputs, strict=True):
            expected = session.clip_shapes[name]
            if x.dim() != 5 or tuple(x.shape[1:]) != expected:
                raise ExportedInputError(
                    f"{self.path.name} was exported for {name} [B, "
                    f"{', '.join(map(str, expected))}], got {list(x.shape)}"
                )
            feed[name] = _numpy(x)
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ExportedInputError(
                f"boxes must be [K, 5] (batch index, x1, y1, x2, y2), got {list(boxes.shape)}"
            )
        if boxes.shape[0] == 0:
            # torch.export cannot trace an empty box list; no boxes need no network.
            return torch.zeros(0, session.num_classes)
        feed["boxes"] = _numpy(boxes)
        return torch.from_numpy(np.asarray(session.run(feed), dtype=np.float32))


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


def _onnxruntime_session(path: Path, num_threads: int | None) -> _Session:
    ort = require("onnxruntime", "running an ONNX export")
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    output = session.get_outputs()[0]
    return _Session(
        run=lambda feed: session.run([output.name], feed)[0],
        input_names=tuple(i.name for i in inputs),
        clip_shapes={i.name: tuple(i.shape[1:]) for i in inputs if i.name != "boxes"},
        num_classes=int(output.shape[1]),
    )


def _openvino_session(path: Path, num_threads: int | None) -> _Session:
    ov = require("openvino", "running an OpenVINO export")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if num_threads is not None:
        config["INFERENCE_NUM_THREADS"] = num_threads
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    output = compiled.outputs[0]

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return request.infer(feed)[output].copy()

    return _Session(
        run=run,
        input_names=tuple(i.any_name for i in compiled.inputs),
        clip_shapes={
            i.any_name: tuple(d.get_length() for d in list(i.partial_shape)[1:])
            for i in compiled.inputs
            if i.any_name != "boxes"
        },
        num_classes=output.partial_shape[1].get_length(),
    )


# What the exported graph depends on: the sections `build_model` reads (less the keys that
# choose how to run it) and the clip size and pixel normalization. Paths, DEVICE, TEST, DEMO and
# the other keys do not change it, so that another OUTPUT_DIR, or switching between ONNX Runtime
# and OpenVINO, reuses the cached file.
_GRAPH_SECTIONS = ("MODEL", "RESNET", "NONLOCAL", "SLOWFAST", "BN", "DETECTION")
_NOT_GRAPH_KEYS = {"MODEL": ("RUNTIME", "EXPORT_DIR", "EXPORT_FILE", "WEIGHTS")}
_GRAPH_KEYS = {"DATA": ("NUM_FRAMES", "TEST_CROP_SIZE", "MEAN", "STD"), "AVA": ("BGR",)}


def graph_config_text(cfg: CfgNode, int8: bool = False) -> str:
    """The part of `cfg` an export depends on, as text; for an int8 file also the whole DATA
    and AVA sections (its calibration clips come from the dataset they name)."""
    parts = []
    for section in _GRAPH_SECTIONS:
        node = cfg[section].clone()
        for key in _NOT_GRAPH_KEYS.get(section, ()):
            node.pop(key, None)
        parts.append(f"{section}:\n{node.dump()}")
    for section, keys in _GRAPH_KEYS.items():
        if int8:
            parts.append(f"{section}:\n{cfg[section].dump()}")
        else:
            parts += [f"{section}.{key}: {cfg[section][key]!r}" for key in keys]
    return "\n".join(parts)


def export_key(
    cfg: CfgNode, weights: str | os.PathLike, clip: ClipShape, int8: bool = False
) -> str:
    """16 hex digits of SHA-256 over the export format, the graph's part of the config
    (`graph_config_text`), the weights file's bytes and the clip size: what the exported file
    depends on."""
    digest = hashlib.sha256()
    for part in (EXPORT_FORMAT_VERSION, graph_config_text(cfg, int8), file_sha256(weights)):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(repr(clip).encode())
    return digest.hexdigest()[:16]


def export_cache_path(
    cfg: CfgNode,
    weights: str | os.PathLike,
    backend: str = "onnxruntime",
    cache_dir: str | os.PathLike | None = None,
    clip: ClipShape | None = None,
) -> Path:
    """Where `cached_export` keeps the export of `cfg` with `weights` for `backend` (a
    `RUNTIMES` name other than "torch"): `{cache_dir or the weights' folder}/{weights
    stem}.{key}.onnx` (`.xml` for OpenVINO, `.int8.onnx` for both int8 runtimes). The .onnx
    file is laid out for ONNX Runtime; the other two are made from `conv3d_source`."""
    if backend not in RUNTIMES[1:]:
        raise RuntimeConfigError(f"backend must be one of {RUNTIMES[1:]}, got {backend!r}")
    weights = Path(weights)
    clip = clip or ClipShape.from_config(cfg)
    folder = Path(cache_dir) if cache_dir is not None else weights.parent
    int8 = backend.endswith(INT8_SUFFIX)
    if int8:
        suffix = ".int8.onnx"
    else:
        suffix = ".onnx" if backend == "onnxruntime" else ".xml"
    return folder / f"{weights.stem}.{export_key(cfg, weights, clip, int8)}{suffix}"


def conv3d_source(xml_path: Path) -> Path:
    """The ONNX file with the model's own 3D convolutions (`export_onnx(..., layout=False)`) from
    which the cached OpenVINO IR `xml_path` and the int8 file of the same export are made:
    `{stem}.{key}.conv3d.onnx` beside the IR."""
    return xml_path.with_suffix(".conv3d.onnx")


def cached_export(
    cfg: CfgNode,
    weights: str | os.PathLike,
    backend: str = "onnxruntime",
    cache_dir: str | os.PathLike | None = None,
    clip: ClipShape | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """The exported file of `cfg` with `weights` for `backend`, exported on first use (see
    `export_cache_path`); the OpenVINO IR and the int8 file are made from the cached ONNX file
    of the model's own 3D convolutions (`conv3d_source`), which OpenVINO runs faster. The int8
    file is calibrated on `calibration(clip)` (default: `calibration_feeds(cfg, clip)`, clips of
    the config's training split); the cache key does not cover the calibration data, so a
    cached int8 file is kept when only the dataset's files change."""
    clip = clip or ClipShape.from_config(cfg)
    path = export_cache_path(cfg, weights, backend, cache_dir, clip)
    if path.is_file():
        return path
    if backend == "onnxruntime":
        return export_onnx(cfg, path, weights=weights, height=clip.height, width=clip.width)
    onnx_path = conv3d_source(export_cache_path(cfg, weights, "openvino", cache_dir, clip))
    if not onnx_path.is_file():
        export_onnx(
            cfg, onnx_path, weights=weights, height=clip.height, width=clip.width, layout=False
        )
    if backend.endswith(INT8_SUFFIX):
        feeds = calibration(clip) if calibration else calibration_feeds(cfg, clip)
        quantize_onnx(onnx_path, path, feeds)
    elif backend == "openvino":
        convert_to_openvino(onnx_path, path)
    return path


def load_runtime(
    cfg: CfgNode,
    weights: str | os.PathLike,
    backend: str = "onnxruntime",
    cache_dir: str | os.PathLike | None = None,
    clip: ClipShape | None = None,
    num_threads: int | None = None,
    calibration: Calibration | None = None,
) -> ExportedDetector:
    """`ExportedDetector` of `cached_export(cfg, weights, backend, cache_dir, clip,
    calibration)`, run by the backend's engine."""
    path = cached_export(cfg, weights, backend, cache_dir, clip, calibration)
    return ExportedDetector(path, engine_of(backend), num_threads)


class CachedDetector:
    """`load_runtime` for every frame size it is called with: `runtime(inputs, boxes)` like the
    PyTorch model, for clips of DATA.NUM_FRAMES frames of any H x W. The first call at a new size
    finds the size's file in the cache or exports it (tens of seconds for R50 on a CPU).

    backend: a `RUNTIMES` name other than "torch" (the int8 ones quantize on first use, with
    `calibration` as in `cached_export`)."""

    def __init__(
        self,
        cfg: CfgNode,
        weights: str | os.PathLike,
        backend: str = "onnxruntime",
        cache_dir: str | os.PathLike | None = None,
        num_threads: int | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        if backend not in RUNTIMES[1:]:
            raise RuntimeConfigError(f"backend must be one of {RUNTIMES[1:]}, got {backend!r}")
        self.cfg, self.weights, self.backend = cfg, weights, backend
        self.cache_dir, self.num_threads = cache_dir, num_threads
        self.calibration = calibration
        self.runtimes: dict[tuple[int, int], ExportedDetector] = {}

    @property
    def num_classes(self) -> int:
        return int(self.cfg.MODEL.NUM_CLASSES)

    def __call__(self, inputs: Sequence[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        """inputs: one clip per pathway [B, 3, T_p, H, W]; boxes [K, 5] -> scores [K, C]."""
        if not inputs or inputs[0].dim() != 5:
            raise ExportedInputError(
                f"inputs must be a list of [B, 3, T, H, W] clips, got "
                f"{[list(x.shape) for x in inputs]}"
            )
        size = (int(inputs[0].shape[3]), int(inputs[0].shape[4]))
        if size not in self.runtimes:
            clip = ClipShape.from_config(self.cfg, *size)
            self.runtimes[size] = load_runtime(
                self.cfg,
                self.weights,
                self.backend,
                self.cache_dir,
                clip,
                self.num_threads,
                self.calibration,
            )
        return self.runtimes[size](inputs, boxes)


def runtime_from_config(
    cfg: CfgNode, weights: str | os.PathLike | None, num_threads: int | None = None
) -> ExportedDetector | CachedDetector:
    """The action model that MODEL.RUNTIME names (anything but "torch"), called like the
    PyTorch model and returning CPU scores: MODEL.EXPORT_FILE run as is when set (an .onnx, or
    an OpenVINO .xml; its clip size is the one it was exported for), else a `CachedDetector` of
    `weights` caching its exports in MODEL.EXPORT_DIR (beside the weights when empty)."""
    runtime = check_runtime(cfg.MODEL.RUNTIME)
    if runtime == "torch":
        raise RuntimeConfigError("MODEL.RUNTIME torch runs the PyTorch model, not an export")
    if cfg.MODEL.EXPORT_FILE:
        path = Path(cfg.MODEL.EXPORT_FILE)
        if path.suffix not in (".onnx", ".xml"):
            raise RuntimeConfigError(
                f"MODEL.EXPORT_FILE: expected an .onnx or OpenVINO .xml file, got {path}"
            )
        return ExportedDetector(path, engine_of(runtime), num_threads)
    if weights is None:
        raise RuntimeConfigError(
            f"MODEL.RUNTIME {runtime} runs an export of the model's weights: set MODEL.WEIGHTS "
            "(or TEST.CHECKPOINT_FILE_PATH for testing), or MODEL.EXPORT_FILE"
        )
    return CachedDetector(cfg, weights, runtime, cfg.MODEL.EXPORT_DIR or None, num_threads)
