"""Clip + box transforms for AVA (PySlowFast's OpenCV pipeline, restated).

Every function takes uint8 RGB frames [T, H, W, 3] (numpy) and boxes in pixels [N, 4]
(x1, y1, x2, y2) and returns the transformed pair, so the boxes follow every resize, crop and
flip. The two entry points:

- `train_transform`: short side to a random size in ``TRAIN_JITTER_SCALES``, random square crop
  of ``TRAIN_CROP_SIZE``, horizontal flip with p = 0.5, optional color jitter;
- `test_transform`: short side to ``TEST_CROP_SIZE``, no crop.

Both finish with ``/255``, ``(x - mean) / std``, an optional RGB -> BGR switch (Caffe2-trained
weights expect BGR), and return a float32 tensor [3, T, H', W'] with boxes in input pixels
clipped to the image (x in [0, W' - 1], y in [0, H' - 1] as PySlowFast clips them).

Boxes that a crop leaves with no area are dropped; `train_transform` returns the indices of the
boxes it kept so that their labels can be dropped with them. (PySlowFast keeps such boxes as
zero-area boxes, which only feed the RoI head empty regions with their labels.)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from detection.structures.boxes import clip_boxes, denormalize_boxes


def boxes_to_pixels(boxes_norm: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized boxes [N, 4] -> float32 pixel boxes [N, 4], clipped to the last pixel as
    PySlowFast clips them."""
    return clip_boxes(
        denormalize_boxes(boxes_norm, height, width), height, width, convention="last_pixel"
    )


def scale_short_side(
    frames: np.ndarray, boxes: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize (bilinear) so the short side is `size`; the long side becomes
    floor(long * size / short)."""
    height, width = frames.shape[1:3]
    if min(height, width) == size:
        return frames, boxes
    if width < height:
        new_w, new_h = size, int(np.floor(height / width * size))
    else:
        new_w, new_h = int(np.floor(width / height * size)), size
    resized = np.stack(
        [cv2.resize(f, (new_w, new_h), interpolation=cv2.INTER_LINEAR) for f in frames]
    )
    scale = np.array(
        [new_w / width, new_h / height, new_w / width, new_h / height], dtype=np.float32
    )
    return resized, boxes * scale


def crop(
    frames: np.ndarray, boxes: np.ndarray, x0: int, y0: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of `size` at (x0, y0); boxes are shifted, not clipped."""
    shift = np.array([x0, y0, x0, y0], dtype=np.float32)
    return frames[:, y0 : y0 + size, x0 : x0 + size], boxes - shift


def horizontal_flip(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; box x1' = W - x2, x2' = W - x1 (continuous pixel coordinates)."""
    width = frames.shape[2]
    flipped = boxes.copy()
    flipped[:, 0] = width - boxes[:, 2]
    flipped[:, 2] = width - boxes[:, 0]
    return np.ascontiguousarray(frames[:, :, ::-1]), flipped


def color_jitter(
    clip: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
) -> np.ndarray:
    """Brightness, contrast and saturation jitter in random order on an RGB clip in [0, 1]
    (float32 [3, T, H, W]); one draw per clip so all frames change alike."""
    gray_weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1, 1)
    strengths = (brightness, contrast, saturation)
    for op in rng.permutation(3):
        alpha = np.float32(1.0 + rng.uniform(-strengths[op], strengths[op]))
        if op == 0:
            clip = clip * alpha
        elif op == 1:
            gray_mean = (clip * gray_weights).sum(0).mean()
            clip = clip * alpha + gray_mean * (1 - alpha)
        else:
            gray = (clip * gray_weights).sum(0, keepdims=True)
            clip = clip * alpha + gray * (1 - alpha)
    return clip


def to_chw_float(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] -> contiguous float32 [3, T, H, W] in [0, 1]."""
    # NumPy rather than torch: a data-loading process must not compete with the training
    # process for cores through torch's intra-op threads.
    return np.ascontiguousarray(frames.transpose(3, 0, 1, 2), dtype=np.float32) * np.float32(
        1 / 255
    )


def normalize(
    clip: np.ndarray, mean: Sequence[float], std: Sequence[float], bgr: bool
) -> torch.Tensor:
    """(clip - mean) / std per channel on an RGB clip float32 [3, T, H, W]; then RGB -> BGR if
    `bgr`. Returns a float32 tensor [3, T, H, W]."""
    mean_a = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(3, 1, 1, 1)
    clip = (clip - mean_a) / std_a
    return torch.from_numpy(np.ascontiguousarray(clip[::-1]) if bgr else clip)


def _nonempty(boxes: np.ndarray) -> np.ndarray:
    return np.flatnonzero((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))


def train_transform(
    frames: np.ndarray,
    boxes_norm: np.ndarray,
    rng: np.random.Generator,
    *,
    jitter_scales: Sequence[int] = (256, 320),
    crop_size: int = 224,
    flip: bool = True,
    use_color_jitter: bool = False,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    bgr: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Training augmentation of one clip.

    frames: uint8 RGB [T, H, W, 3]; boxes_norm: [N, 4] normalized x1, y1, x2, y2.
    Returns (clip float32 [3, T, crop, crop], boxes float32 [M, 4] in crop pixels, kept int64 [M]
    = indices into the N input boxes that are still inside the crop).
    """
    height, width = frames.shape[1:3]
    boxes = boxes_to_pixels(boxes_norm, height, width)
    size = int(round(rng.uniform(jitter_scales[0], jitter_scales[1])))
    frames, boxes = scale_short_side(frames, boxes, size)
    height, width = frames.shape[1:3]
    if height < crop_size or width < crop_size:
        raise ValueError(f"crop {crop_size} is larger than the scaled clip {width}x{height}")
    x0 = int(rng.integers(0, width - crop_size + 1))
    y0 = int(rng.integers(0, height - crop_size + 1))
    frames, boxes = crop(frames, boxes, x0, y0, crop_size)
    if flip and rng.random() < 0.5:
        frames, boxes = horizontal_flip(frames, boxes)
    boxes = clip_boxes(boxes, crop_size, crop_size, convention="last_pixel")
    kept = _nonempty(boxes)
    clip = to_chw_float(frames)
    if use_color_jitter:
        clip = color_jitter(clip, rng)
    clip = normalize(clip, mean, std, bgr)
    return clip, torch.from_numpy(boxes[kept]), kept


def test_transform(
    frames: np.ndarray,
    boxes_norm: np.ndarray,
    *,
    short_side: int = 256,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    bgr: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Test-time preprocessing: short side to `short_side`, no crop, no flip.

    frames: uint8 RGB [T, H, W, 3]; boxes_norm: [N, 4] normalized. Returns (clip float32
    [3, T, H', W'], boxes float32 [N, 4] in H' x W' pixels, clipped). No box is dropped.
    """
    height, width = frames.shape[1:3]
    boxes = boxes_to_pixels(boxes_norm, height, width)
    frames, boxes = scale_short_side(frames, boxes, short_side)
    boxes = clip_boxes(boxes, *frames.shape[1:3], convention="last_pixel")
    return normalize(to_chw_float(frames), mean, std, bgr), torch.from_numpy(boxes)
