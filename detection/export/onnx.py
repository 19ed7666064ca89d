"""ONNX export of the action detector (backbone + RoI head), for ONNX Runtime and OpenVINO.

The exported graph is the eval-mode network, with the number of clips B and the number of boxes K
dynamic and the clip size (T, H, W) fixed at export time:

inputs (float32)
    ``slow`` [B, 3, T/alpha, H, W] and ``fast`` [B, 3, T, H, W] for SlowFast (MODEL.ARCH
    "slowfast"); ``slow`` [B, 3, T, H, W] alone for Slow-only ("slow"). T = DATA.NUM_FRAMES,
    alpha = SLOWFAST.ALPHA, H = W = DATA.TEST_CROP_SIZE unless given. Pixels are normalized as
    the data loader does: ``(x / 255 - mean[c]) / std[c]`` per input channel c, with channels in
    RGB order (BGR when AVA.BGR); DATA.MEAN and DATA.STD are written in BGR order, so for RGB
    input channel c uses DATA.MEAN[2 - c]. The file's metadata holds the per-input-channel values.
    ``boxes`` [K, 5] = (batch index, x1, y1, x2, y2) in input pixels (float32; the batch index
    is a whole number in [0, B)).

output
    ``scores`` [K, MODEL.NUM_CLASSES]: the head's eval activation (sigmoid probabilities for AVA),
    row k for box k; column i is AVA action id i + 1.

The exporter is PyTorch's torch.export-based one (``torch.onnx.export(..., dynamo=True)``, the
default since PyTorch 2.9; the TorchScript one is deprecated), at opset 20. Its ONNX optimizer
folds each BatchNorm into the conv before it (and OpenVINO needs that pass: without it a conv's
zero bias is a dynamic Expand that OpenVINO's reader rejects). With ``layout=True`` (the
default: the file ONNX Runtime runs) the eval model is first rewritten by
`detection.export.layout.export_layout`, BN folded and every 3D convolution written as a 2D one
in standard ONNX ops, and the exported graph's chained Reshapes collapsed (`collapse_reshapes`),
which ONNX Runtime runs 1.2x faster (R50 at 224, 1 thread, process CPU time);
OpenVINO runs the model's own 3D convolutions (``layout=False``) 1.25x faster than that layout,
so its IR is converted from that graph. torchvision's ``roi_align`` becomes ONNX ``RoiAlign``
(opset 16+), whose ``coordinate_transformation_mode`` is "half_pixel" for DETECTION.ALIGNED True
and "output_half_pixel" for False.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from yacs.config import CfgNode

from detection.errors import UserError
from detection.models import PathwayResNet, build_model
from detection.utils.atomic import atomic_write

logger = logging.getLogger(__name__)

OPSET = 20
# Bump when the exported graph or its metadata change, so that cached files are rebuilt.
EXPORT_FORMAT_VERSION = "3"
# Upper bounds torch.export needs for the dynamic dimensions; a runtime accepts any size.
_MAX_BATCH = 1024
_MAX_BOXES = 1 << 16
# Smallest input side: the backbone's output stride.
_MIN_SIZE = 16

IO_DOC = (
    "inputs: slow [B,3,T/alpha,H,W] (+ fast [B,3,T,H,W] for SlowFast; Slow-only: slow "
    "[B,3,T,H,W]) float32, normalized (x/255 - mean[c]) / std[c] per input channel c (metadata "
    "'mean', 'std', 'channel_order'); boxes [K,5] float32 = (batch index, x1, y1, x2, y2) in "
    "input pixels. output: scores [K,C] float32, the head's eval activation (sigmoid "
    "probabilities for AVA); column i is AVA action id i + 1. B and K are dynamic, T, H, W fixed."
)


class ExportDependencyError(UserError, ImportError):
    """A package that export or an exported-model runtime needs is not installed."""


def require(module: str, purpose: str) -> Any:
    """Import `module` or raise `ExportDependencyError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ExportDependencyError(
            f"{purpose} needs the Python package {module!r} ({e}); install the export extra: "
            f"pip install 'slowfast-ava-detection[export]'"
        ) from e


@dataclass(frozen=True)
class ClipShape:
    """The fixed clip size of an export: `num_frames` T (the Fast pathway's for SlowFast),
    `height` H and `width` W in pixels, and `alpha` (SlowFast's frame-rate ratio; None for
    Slow-only)."""

    num_frames: int
    height: int
    width: int
    alpha: int | None

    @classmethod
    def from_config(
        cls, cfg: CfgNode, height: int | None = None, width: int | None = None
    ) -> ClipShape:
        """DATA.NUM_FRAMES frames of DATA.TEST_CROP_SIZE squared, unless `height`/`width` given."""
        alpha = cfg.SLOWFAST.ALPHA if cfg.MODEL.ARCH == "slowfast" else None
        size = cfg.DATA.TEST_CROP_SIZE
        shape = cls(cfg.DATA.NUM_FRAMES, height or size, width or size, alpha)
        if min(shape.height, shape.width) < _MIN_SIZE:
            raise ExportConfigError(
                f"the input must be at least {_MIN_SIZE} pixels high and wide (one res5 cell), "
                f"got {shape.height}x{shape.width}"
            )
        if alpha is not None and shape.num_frames % alpha:
            raise ExportConfigError(
                f"DATA.NUM_FRAMES ({shape.num_frames}) must be a multiple of SLOWFAST.ALPHA "
                f"({alpha}) to export a SlowFast model"
            )
        return shape

    def input_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Input name -> [B, 3, T_p, H, W] for `batch` clips, in input order."""
        hw = (self.height, self.width)
        if self.alpha is None:
            return {"slow": (batch, 3, self.num_frames, *hw)}
        return {
            "slow": (batch, 3, self.num_frames // self.alpha, *hw),
            "fast": (batch, 3, self.num_frames, *hw),
        }


class ExportConfigError(UserError, ValueError):
    """A config or option that cannot be exported."""


class _SlowFastDetector(nn.Module):
    """A SlowFast network with one positional tensor per ONNX input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, slow: torch.Tensor, fast: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.model([slow, fast], boxes)


class _SlowDetector(nn.Module):
    """A Slow-only network with one positional tensor per ONNX input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, slow: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return self.model([slow], boxes)


def normalization(cfg: CfgNode) -> dict[str, Any]:
    """The pixel normalization the exported model expects, per input channel (in input order)."""
    bgr = bool(cfg.AVA.BGR)
    # DATA.MEAN/STD are indexed in BGR order (see detection.data.transforms.normalize).
    order = [0, 1, 2] if bgr else [2, 1, 0]
    return {
        "channel_order": "BGR" if bgr else "RGB",
        "mean": [float(cfg.DATA.MEAN[i]) for i in order],
        "std": [float(cfg.DATA.STD[i]) for i in order],
        "scale": 1 / 255,
    }


def export_metadata(cfg: CfgNode, clip: ClipShape, weights: str | os.PathLike | None) -> dict:
    """Key -> string metadata written into the ONNX file (and the OpenVINO IR)."""
    norm = normalization(cfg)
    return {
        "description": IO_DOC,
        "arch": cfg.MODEL.ARCH,
        "num_classes": str(cfg.MODEL.NUM_CLASSES),
        "inputs": json.dumps(clip.input_shapes(batch=-1) | {"boxes": (-1, 5)}),
        "channel_order": norm["channel_order"],
        "mean": json.dumps(norm["mean"]),
        "std": json.dumps(norm["std"]),
        "pixel_scale": "1/255",
        "weights": "" if weights is None else Path(weights).name,
        "export_format_version": EXPORT_FORMAT_VERSION,
        "config": cfg.dump(),
    }


def _example_inputs(clip: ClipShape) -> tuple[torch.Tensor, ...]:
    # Two clips and three boxes, so that no dynamic dimension is traced at a size of 1, which
    # torch.export would specialize.
    g = torch.Generator().manual_seed(0)
    clips = [torch.randn(s, generator=g) for s in clip.input_shapes(batch=2).values()]
    h, w = clip.height, clip.width
    boxes = torch.tensor(
        [[0, 0, 0, w / 2, h / 2], [1, w / 4, h / 4, w - 1, h - 1], [1, 1, 2, w / 3, h - 2]],
        dtype=torch.float32,
    )
    return (*clips, boxes)


def onnx_model(
    model: PathwayResNet, clip: ClipShape, metadata: dict[str, str], layout: bool = True
) -> Any:
    """The eval-mode `model` as an `onnx.ModelProto` (see the module docstring for its inputs),
    with its 3D convolutions written as 2D ones when `layout` (`export_layout`)."""
    from .layout import export_layout

    require("onnxscript", "ONNX export")
    onnx = require("onnx", "ONNX export")
    names = [*clip.input_shapes(batch=1), "boxes"]
    if len(names) - 1 != model.num_pathways:
        raise ExportConfigError(
            f"the model has {model.num_pathways} pathways but the clip shape describes "
            f"{len(names) - 1}"
        )
    batch = torch.export.Dim("B", min=1, max=_MAX_BATCH)
    boxes = torch.export.Dim("K", min=1, max=_MAX_BOXES)
    dynamic = [{0: batch} for _ in names[:-1]] + [{0: boxes}]
    was_training = model.training
    model.eval()
    network = export_layout(model) if layout else model
    try:
        with warnings.catch_warnings():
            # The exporter warns that it names the dynamic axis of fast after slow's (both B).
            warnings.simplefilter("ignore", UserWarning)
            program = torch.onnx.export(
                (_SlowFastDetector if clip.alpha is not None else _SlowDetector)(network),
                _example_inputs(clip),
                input_names=names,
                output_names=["scores"],
                dynamic_shapes=tuple(dynamic),
                opset_version=OPSET,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
    finally:
        model.train(was_training)
    if program is None:  # only when exporting to a path given as `f`, which is not done here
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    proto = program.model_proto
    if layout:
        collapse_reshapes(proto)
    proto.doc_string = IO_DOC
    for node in proto.graph.node:
        # Drop the per-node stack traces and class paths of this machine's checkout.
        del node.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    return proto


def collapse_reshapes(proto: Any) -> None:
    """Rewrite `proto` (an `onnx.ModelProto`, in place) without chained and identity Reshapes.

    A Reshape of a Reshape reads the first one's input instead (the same elements in the same
    order), and a Reshape to the shape its input already has (known from the graph's value_info,
    the batch written as -1) is dropped. The 2D layout leaves such pairs between residual blocks
    (`ResidualBlock2d`); without them the block output reaches the next block's convs directly,
    where ONNX Runtime keeps it in its blocked NCHWc layout instead of reordering it back and
    forth, and fuses the residual add into the conv.
    """
    onnx = require("onnx", "ONNX export")
    graph = proto.graph
    constants = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    known = {
        info.name: [
            d.dim_value if d.HasField("dim_value") else None
            for d in info.type.tensor_type.shape.dim
        ]
        for info in [*graph.value_info, *graph.input]
        if info.type.tensor_type.HasField("shape")
    }

    def target(node: Any) -> list[int] | None:
        tensor = constants.get(node.input[1])
        if tensor is None:
            return None
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        dims = [int(v) for v in onnx.numpy_helper.to_array(tensor)]
        return dims if allowzero or 0 not in dims else None

    outputs = {out.name for out in graph.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            continue
        dims = target(node)
        if dims is None:
            continue
        source = producer.get(node.input[0])
        if source is not None and source.op_type == "Reshape" and source.domain in ("", "ai.onnx"):
            node.input[0] = source.input[0]
        have = known.get(node.input[0])
        if (
            node.output[0] not in outputs
            and have is not None
            and len(have) == len(dims)
            and dims[0] == -1
            and all(d is not None and d == t for d, t in zip(have[1:], dims[1:], strict=True))
        ):
            rename[node.output[0]] = node.input[0]
    used = set(outputs)
    # Drop the Reshapes nothing reads any more, last first so that chains go in one pass.
    for node in reversed(list(graph.node)):
        if node.op_type == "Reshape" and node.output[0] not in used:
            graph.node.remove(node)
        else:
            used.update(node.input)
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    defined = {out for node in graph.node for out in node.output}
    defined |= {t.name for t in graph.initializer} | {i.name for i in graph.input}
    for info in [info for info in graph.value_info if info.name not in defined]:
        graph.value_info.remove(info)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_export_model(cfg: CfgNode, weights: str | os.PathLike | None) -> PathwayResNet:
    """`build_model(cfg)` in eval mode with `weights` loaded (random weights when None)."""
    from detection.checkpoint import load_checkpoint

    model = build_model(cfg)
    if weights is not None:
        load_checkpoint(weights, model)
    return model.eval()


def export_onnx(
    cfg: CfgNode,
    output: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    model: PathwayResNet | None = None,
    height: int | None = None,
    width: int | None = None,
    layout: bool = True,
) -> Path:
    """Write the detector of `cfg` as ONNX to `output` (atomically) and return its path.

    The network is `model` if given (already holding its weights), else `build_model(cfg)` with
    `weights` (any format `detection.checkpoint` reads; random weights when None). The clip size
    is `ClipShape.from_config(cfg, height, width)`. `layout`: the graph laid out for ONNX Runtime
    (3D convolutions as 2D ones) rather than the model's own, which OpenVINO runs faster; both
    have the same inputs, output and metadata.
    """
    clip = ClipShape.from_config(cfg, height, width)
    if model is None:
        model = build_export_model(cfg, weights)
    proto = onnx_model(model, clip, export_metadata(cfg, clip, weights), layout)
    output = Path(output)
    with atomic_write(output, "wb") as f:
        f.write(proto.SerializeToString())
    logger.info("wrote %s (%s)", output, _describe(clip))
    return output


def _describe(clip: ClipShape) -> str:
    return ", ".join(f"{k} {list(v)}" for k, v in clip.input_shapes(batch=-1).items())
