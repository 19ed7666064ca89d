"""One vocabulary for boxes: float arrays [N, 4] of (x1, y1, x2, y2), (x1, y1) the top-left.

Two coordinate spaces, said in every name and docstring that takes boxes:

- **normalized**: fractions of the frame's width and height, [0, 1] (AVA's CSV files);
- **pixels**: the frame's pixels, x right and y down from the frame's top-left corner.

Clipping to the frame has two conventions (`BoxConvention`), and each caller names the one it
follows:

- ``"edges"``: coordinates are positions on the continuous image plane, so a box may reach the
  frame's far edge: x in [0, W], y in [0, H] (person detectors, torchvision, Detectron2);
- ``"last_pixel"``: coordinates are pixel indices, so x in [0, W - 1], y in [0, H - 1]
  (PySlowFast's `clip_boxes_to_image`, which its AVA transforms apply).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

BoxConvention = Literal["edges", "last_pixel"]


def _frame_scale(height: int, width: int) -> np.ndarray:
    return np.array([width, height, width, height], dtype=np.float32)


def normalize_boxes(boxes_px: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel boxes [N, 4] of a `height` x `width` frame -> float32 normalized boxes [N, 4]."""
    return np.asarray(boxes_px, dtype=np.float32).reshape(-1, 4) / _frame_scale(height, width)


def denormalize_boxes(boxes_norm: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized boxes [N, 4] -> float32 pixel boxes [N, 4] of a `height` x `width` frame
    (not clipped: see `clip_boxes`)."""
    return np.asarray(boxes_norm, dtype=np.float32).reshape(-1, 4) * _frame_scale(height, width)


def clip_boxes(
    boxes_px: np.ndarray, height: int, width: int, *, convention: BoxConvention
) -> np.ndarray:
    """Pixel boxes [N, 4] clipped to a `height` x `width` frame, as a new float32 array.

    convention: ``"edges"`` clips to x in [0, W], y in [0, H]; ``"last_pixel"`` to
    x in [0, W - 1], y in [0, H - 1] (see the module docstring).
    """
    if convention == "edges":
        max_x, max_y = float(width), float(height)
    elif convention == "last_pixel":
        max_x, max_y = width - 1.0, height - 1.0
    else:
        raise ValueError(f"convention must be 'edges' or 'last_pixel', got {convention!r}")
    out = np.array(boxes_px, dtype=np.float32).reshape(-1, 4)
    out[:, 0::2] = out[:, 0::2].clip(0.0, max_x)
    out[:, 1::2] = out[:, 1::2].clip(0.0, max_y)
    return out


def nonempty_box_mask(boxes: np.ndarray) -> np.ndarray:
    """bool [N]: the boxes [N, 4] with finite coordinates and positive width and height."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (
        np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    )


def check_frame(frame_rgb: np.ndarray) -> tuple[int, int]:
    """Validate the frame contract, a uint8 RGB array [H, W, 3]; returns (height, width)."""
    if not isinstance(frame_rgb, np.ndarray):
        raise TypeError(f"frame must be a numpy array, got {type(frame_rgb).__name__}")
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
        raise ValueError(
            f"frame must be uint8 RGB [H, W, 3], got {frame_rgb.dtype} {list(frame_rgb.shape)}"
        )
    height, width = frame_rgb.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"frame is empty: {list(frame_rgb.shape)}")
    return height, width


def paired_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of box i of `boxes1` with box i of `boxes2`: [N, 4] and [N, 4] -> [N].

    Arithmetic in the official AVA evaluator's order (intersection height before width, no +1
    pixel), so that an IoU of exactly 0.5 compares as it does there. Either space works, as long
    as both arrays are in the same one.
    """
    heights = np.maximum(
        0.0, np.minimum(boxes1[:, 3], boxes2[:, 3]) - np.maximum(boxes1[:, 1], boxes2[:, 1])
    )
    widths = np.maximum(
        0.0, np.minimum(boxes1[:, 2], boxes2[:, 2]) - np.maximum(boxes1[:, 0], boxes2[:, 0])
    )
    intersection = heights * widths
    area1 = (boxes1[:, 3] - boxes1[:, 1]) * (boxes1[:, 2] - boxes1[:, 0])
    area2 = (boxes2[:, 3] - boxes2[:, 1]) * (boxes2[:, 2] - boxes2[:, 0])
    return intersection / (area1 + area2 - intersection)


def pairwise_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every box of `boxes1` [N, 4] with every box of `boxes2` [M, 4] -> [N, M]
    (the shape of `torchvision.ops.box_iou`), with `paired_iou`'s arithmetic."""
    boxes1 = np.asarray(boxes1).reshape(-1, 4)
    boxes2 = np.asarray(boxes2).reshape(-1, 4)
    n, m = len(boxes1), len(boxes2)
    return paired_iou(np.repeat(boxes1, m, axis=0), np.tile(boxes2, (n, 1))).reshape(n, m)
