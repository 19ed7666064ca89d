"""int8 post-training quantization of an exported detector (ONNX Runtime's static quantizer).

The quantized file is the fp32 ONNX export of the model's own 3D convolutions
(`export_onnx(..., layout=False)`, the graph OpenVINO runs faster) with each convolution's input
and weights wrapped in QuantizeLinear/DequantizeLinear pairs (QDQ format): weights int8
symmetric per output channel, activations uint8 per tensor with ranges from calibration clips
(min/max). ONNX Runtime runs it
with int8 kernels, and OpenVINO reads the same file and runs its convolutions in int8 (its
low-precision transformations turn each QDQ pair into FakeQuantize). The RoI head's linear
projection, RoIAlign and the pooling stay float32, so the scores are the fp32 head's on int8
features. No dependency beyond onnxruntime; OpenVINO's own NNCF quantizer would add
scikit-learn, networkx, ninja, pydot and rich.

The inputs and the output are those of the fp32 file (see `detection.export.onnx`); the scores
move by the quantization error, which `tests/test_export.py` bounds and
`benchmarks/model_forward.py` reports. int8 is offered, never chosen by default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode

from detection.utils.atomic import atomic_write

from .onnx import ClipShape, ExportConfigError, require

logger = logging.getLogger(__name__)

# Calibration clips: enough for stable per-tensor min/max ranges of a ResNet, few enough that
# calibrating an R50 takes well under a minute on a CPU.
CALIBRATION_CLIPS = 8

Feed = dict[str, np.ndarray]


def quantize_onnx(
    onnx_path: str | os.PathLike, output: str | os.PathLike, calibration: Iterable[Feed]
) -> Path:
    """Write the int8 (QDQ) version of the fp32 export `onnx_path` to `output`, atomically.

    calibration: model feeds (input name -> float32 array, as `ExportedDetector` builds them:
    clips [B, 3, T_p, H, W] normalized, boxes [K, 5]); the activation ranges are the min/max
    over all of them.
    """
    require("onnxruntime", "int8 quantization")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    feeds = list(calibration)
    if not feeds:
        raise ExportConfigError("int8 quantization needs at least one calibration clip")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[Feed] = iter(feeds)

        def get_next(self) -> Feed | None:
            return next(self.items, None)

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.quantizing.onnx")
    # The quantizer advises, on the root logger, to pre-process the model first (shape
    # inference, graph optimization): the exporter's optimizer has done both.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(onnx_path),
            str(tmp),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        with atomic_write(output, "wb") as f, open(tmp, "rb") as data:
            while chunk := data.read(1 << 22):
                f.write(chunk)
    finally:
        root.setLevel(level)
        tmp.unlink(missing_ok=True)
    logger.info("wrote %s (int8, calibrated on %d feeds)", output, len(feeds))
    return output


def calibration_feeds(cfg: CfgNode, clip: ClipShape, count: int = CALIBRATION_CLIPS) -> list[Feed]:
    """`count` clips of the training split of `cfg`'s dataset (DATA.PATH_TO_DATA_DIR), keyframes
    spread evenly over it, each with its ground-truth boxes, resized to `clip`'s H x W and
    normalized as at test time; one feed per clip (B = 1)."""
    import cv2

    from detection.data.dataset import AvaDataset
    from detection.data.transforms import test_transform

    dataset = AvaDataset(cfg, "train")
    if len(dataset) == 0:
        raise ExportConfigError(
            f"int8 calibration reads the training split of DATA.PATH_TO_DATA_DIR "
            f"({cfg.DATA.PATH_TO_DATA_DIR}), which has no keyframes"
        )
    picks = np.unique(np.linspace(0, len(dataset) - 1, count).round().astype(int))
    names = list(clip.input_shapes(batch=1))
    feeds = []
    for index in picks:
        frames = dataset.read_frames(int(index))
        frames = np.stack(
            [cv2.resize(f, (clip.width, clip.height), interpolation=cv2.INTER_AREA) for f in frames]
        )
        inputs, boxes = test_transform(
            frames,
            dataset.keyframes[int(index)].boxes,
            short_side=min(clip.height, clip.width),
            mean=cfg.DATA.MEAN,
            std=cfg.DATA.STD,
            bgr=cfg.AVA.BGR,
        )
        fast = inputs.unsqueeze(0)
        pathways = [fast] if clip.alpha is None else [fast[:, :, :: clip.alpha], fast]
        feed = {n: np.ascontiguousarray(x.numpy()) for n, x in zip(names, pathways, strict=True)}
        feed["boxes"] = np.concatenate(
            [np.zeros((len(boxes), 1), np.float32), boxes.numpy()], axis=1
        )
        feeds.append(feed)
    return feeds


def random_feeds(clip: ClipShape, count: int = CALIBRATION_CLIPS, seed: int = 0) -> list[Feed]:
    """`count` feeds of standard-normal clips with two boxes each: calibration for a model
    that saw no data (benchmarks, tests); ranges then follow normalized pixel noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = clip.height, clip.width
    boxes = np.array([[0, 0, 0, w / 2, h / 2], [0, w / 4, h / 4, w - 1, h - 1]], np.float32)
    feeds = []
    for _ in range(count):
        shapes = clip.input_shapes(batch=1)
        fast = torch.randn(*shapes[list(shapes)[-1]], generator=g)
        pathways = [fast] if clip.alpha is None else [fast[:, :, :: clip.alpha], fast]
        feed = {n: np.ascontiguousarray(x.numpy()) for n, x in zip(shapes, pathways, strict=True)}
        feed["boxes"] = boxes
        feeds.append(feed)
    return feeds
