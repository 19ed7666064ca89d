"""Clip + box transforms for AVA: PySlowFast's OpenCV pipeline (``cv2_transform``), restated.

Every function takes uint8 RGB frames [T, H, W, 3] (numpy) and boxes in pixels [N, 4]
(x1, y1, x2, y2) and returns the transformed pair, so the boxes follow every resize, crop and
flip. The two entry points, in PySlowFast's order of operations:

- `train_transform`: short side to a size drawn by `jitter_short_side` (1 / size uniform in
  [1 / max, 1 / min]), random square crop of ``TRAIN_CROP_SIZE``, horizontal flip with
  p = 0.5, then, with colour augmentation on, colour jitter (unless PCA-only) and AlexNet PCA
  lighting;
- `test_transform`: short side to ``TEST_CROP_SIZE``, no crop, no flip.

Both finish with ``/ 255``, ``(x - mean) / std`` and the channel order the weights expect, and
return a float32 tensor [3, T, H', W'] with float32 boxes in input pixels clipped to the image
(x in [0, W' - 1], y in [0, H' - 1], as PySlowFast clips them).

Pixel conventions taken from PySlowFast:

- Scaling keeps the aspect ratio: short side = size, long side = floor(long * size / short),
  and boxes are multiplied by ONE factor, new_long / long (the long side's ratio, which the
  floor makes slightly smaller than size / short). The frames themselves are stretched by
  slightly different factors along x and y; the boxes are not.
- A flip maps x to W - 1 - x (pixel indices), after the crop.
- Crop offsets are drawn from [0, H - crop) and [0, W - crop) (the last offset is never drawn).
- Boxes are computed in float64 and rounded to float32 once at the end, as PySlowFast's
  collate does, so boxes equal PySlowFast's to the last float32 bit.
- ``mean`` and ``std`` are indexed in BGR order: PySlowFast's AVA loader normalizes the BGR
  image it read with OpenCV before switching it to RGB. (The published configs use the same
  value for every channel, where the order does not matter.)

Boxes that a crop leaves with no area are dropped; `train_transform` returns the indices of the
boxes it kept so that their labels can be dropped with them. (PySlowFast keeps such boxes as
zero-area boxes, which only feed the RoI head empty regions with their labels.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch

from .sampling import PATHWAY_ARCHS, pack_pathways, slow_indices

# PySlowFast's DATA.TRAIN_PCA_EIGVAL / TRAIN_PCA_EIGVEC (ImageNet RGB statistics; row i of the
# eigenvector matrix is channel i = R, G, B).
PCA_EIGVAL = (0.225, 0.224, 0.229)
PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
PCA_ALPHA_STD = 0.1
COLOR_JITTER_STRENGTH = 0.4


def boxes_to_pixels(boxes_norm: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized boxes [N, 4] -> float64 pixel boxes [N, 4] (x * W, y * H), clipped to
    x in [0, W - 1], y in [0, H - 1] as PySlowFast clips them."""
    boxes = np.asarray(boxes_norm, dtype=np.float64).reshape(-1, 4)
    return clip_to_last_pixel(
        boxes * np.array([width, height, width, height], np.float64), height, width
    )


def clip_to_last_pixel(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """float64 boxes [N, 4] clipped to x in [0, W - 1], y in [0, H - 1] (a new array).

    Float64 rather than `detection.structures.boxes.clip_boxes` (float32): boxes stay float64
    until `train_transform` / `test_transform` return, as in PySlowFast."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    out[:, 0::2] = out[:, 0::2].clip(0.0, width - 1.0)
    out[:, 1::2] = out[:, 1::2].clip(0.0, height - 1.0)
    return out


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(H', W') of a `height` x `width` frame whose short side is scaled to `size`: the long
    side becomes floor(long / short * size); a frame whose short side is `size` keeps its size."""
    if min(height, width) == size:
        return height, width
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def scale_short_side(
    frames: np.ndarray, boxes: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize (bilinear) to `short_side_size`; boxes [N, 4] (float64) are multiplied by the one
    factor new_long / long (PySlowFast's ``scale_boxes``, see the module docstring)."""
    height, width = frames.shape[1:3]
    return scale_frames(frames, size), _scale_boxes(boxes, height, width, size)


def scale_frames(frames: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """The frames of `scale_short_side`: uint8 [T, H, W, 3] -> [T, H', W', 3], each frame
    resized on its own; written into `out` (contiguous uint8 [T, H', W', 3]) when given, else
    `frames` itself when the size does not change, else a new array."""
    height, width = frames.shape[1:3]
    new_h, new_w = short_side_size(height, width, size)
    if out is None:
        if (new_h, new_w) == (height, width):
            return frames
        out = np.empty((len(frames), new_h, new_w, 3), np.uint8)
    elif out.shape != (len(frames), new_h, new_w, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(len(frames), new_h, new_w, 3)}, got {out.shape}")
    elif not out.flags.c_contiguous:
        raise ValueError("out must be contiguous")  # cv2.resize would write elsewhere
    for frame, target in zip(frames, out, strict=True):
        if (new_h, new_w) == (height, width):
            target[...] = frame
        else:
            cv2.resize(frame, (new_w, new_h), dst=target, interpolation=cv2.INTER_LINEAR)
    return out


def _scale_boxes(boxes: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """float64 pixel boxes [N, 4] of a `height` x `width` frame -> those of the frame scaled to
    short side `size`: one factor, new_long / long (see the module docstring)."""
    new_h, new_w = short_side_size(height, width, size)
    if (new_h, new_w) == (height, width):
        return boxes
    factor = new_h / height if width < height else new_w / width
    return np.asarray(boxes, dtype=np.float64) * factor


def jitter_short_side(rng: np.random.Generator, min_size: int, max_size: int) -> int:
    """A training short side: round(1 / u) with u uniform in [1 / max_size, 1 / min_size]
    (PySlowFast's scale jitter: uniform in inverse size, so smaller sizes are drawn more often
    than larger ones)."""
    return int(round(1.0 / rng.uniform(1.0 / max_size, 1.0 / min_size)))


def crop(
    frames: np.ndarray, boxes: np.ndarray, x0: int, y0: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of `size` at (x0, y0); boxes are shifted, not clipped."""
    shift = np.array([x0, y0, x0, y0], dtype=np.float64)
    return frames[:, y0 : y0 + size, x0 : x0 + size], boxes - shift


def random_crop_offsets(
    rng: np.random.Generator, height: int, width: int, size: int
) -> tuple[int, int]:
    """(x0, y0) of a random `size` crop: uniform in [0, H - size) and [0, W - size), 0 where the
    side equals `size` (PySlowFast's ``random_crop_list``; y is drawn first)."""
    y0 = int(rng.integers(0, height - size)) if height > size else 0
    x0 = int(rng.integers(0, width - size)) if width > size else 0
    return x0, y0


def horizontal_flip(frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; box x1' = W - 1 - x2, x2' = W - 1 - x1 (pixel indices, as
    PySlowFast's ``flip_boxes``)."""
    width = frames.shape[2]
    flipped = np.array(boxes, dtype=np.float64)
    flipped[:, 0] = width - 1 - boxes[:, 2]
    flipped[:, 2] = width - 1 - boxes[:, 0]
    return np.ascontiguousarray(frames[:, :, ::-1]), flipped


_255 = np.float32(255)
_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(3, 1, 1, 1)


def color_jitter(
    clip: np.ndarray, rng: np.random.Generator, strength: float = COLOR_JITTER_STRENGTH
) -> np.ndarray:
    """Brightness, contrast and saturation jitter in random order on an RGB clip in [0, 1]
    (float32 [3, T, H, W]); one factor per operation for the whole clip. Contrast blends each
    frame with the mean gray of that frame (PySlowFast's ``color_jitter_list``)."""
    for op in rng.permutation(3):
        alpha = 1.0 + rng.uniform(-strength, strength)
        keep, mix = np.float32(alpha), np.float32(1.0 - alpha)
        if op == 0:  # brightness: blend with black
            clip = clip * keep
        elif op == 1:  # contrast: blend with each frame's mean gray
            gray_mean = (clip * _GRAY_WEIGHTS).sum(0).mean(axis=(1, 2)).reshape(1, -1, 1, 1)
            clip = clip * keep + gray_mean * mix
        else:  # saturation: blend with the gray image
            gray = (clip * _GRAY_WEIGHTS).sum(0, keepdims=True)
            clip = clip * keep + gray * mix
    return clip


def pca_lighting(
    clip: np.ndarray, rng: np.random.Generator, alpha_std: float = PCA_ALPHA_STD
) -> np.ndarray:
    """AlexNet PCA lighting on an RGB clip in [0, 1] (float32 [3, T, H, W]): channel c gets
    sum_j eigvec[c][j] * alpha_j * eigval_j added, alpha ~ N(0, alpha_std) drawn once per clip."""
    alpha = rng.normal(0.0, alpha_std, size=3)
    shift = (np.array(PCA_EIGVEC) * (alpha * np.array(PCA_EIGVAL))).sum(axis=1)
    return clip + shift.astype(np.float32).reshape(3, 1, 1, 1)


def to_chw_float(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W, 3] -> contiguous float32 [3, T, H, W] in [0, 1] (x / 255)."""
    return _to_chw(frames, None)


def normalize(
    clip: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    bgr: bool,
    *,
    in_place: bool = False,
) -> torch.Tensor:
    """(clip - mean) / std on an RGB clip float32 [3, T, H, W], with `mean` and `std` given in
    BGR order (PySlowFast's AVA loader); then RGB -> BGR if `bgr`. Returns float32 [3, T, H, W],
    in `clip`'s memory if `in_place` (unless `bgr`), else new."""
    mean_rgb, std_rgb = _channel_stats(mean, std)
    out = clip if in_place else np.empty(clip.shape, np.float32)
    for c in range(3):
        _standardize(clip[c], mean_rgb[c], std_rgb[c], out=out[c])
    return torch.from_numpy(np.ascontiguousarray(out[::-1]) if bgr else out)


def _standardize(values: np.ndarray, mean: np.float32, std: np.float32, out: np.ndarray) -> None:
    """out = (values - mean) / std in float32, in that order (the order PySlowFast's loader
    computes it in, so the values are bit-identical); `out` may be `values`."""
    np.subtract(values, mean, out=out, dtype=np.float32)
    np.divide(out, std, out=out)


def to_normalized_chw(
    frames: np.ndarray | Sequence[np.ndarray],
    mean: Sequence[float],
    std: Sequence[float],
    bgr: bool,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """`normalize(to_chw_float(frames), mean, std, bgr)` in one pass over the frames: the same
    float32 values, without a clip-sized temporary. uint8 [T, H, W, 3] (or T frames [H, W, 3]
    of one size) -> float32 [3, T, H, W], written into `out` (contiguous, of that shape) when
    given."""
    target = None if out is None else out.numpy()
    return torch.from_numpy(_to_chw(frames, (tuple(mean), tuple(std), bgr), out=target))


def prepare_normalization() -> None:
    """Load the compiled kernel of `to_normalized_chw` now (Numba's import and the code's load,
    ~0.5-0.9 s) rather than at the first clip: a process about to fork DataLoader workers calls
    it, so that they inherit it instead of each loading it again, every epoch."""
    _normalize_kernel()


def _normalize_kernel() -> Any:
    from ._normalize_kernel import normalize_frame

    return normalize_frame


def _channel_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 [3] mean and std in RGB order from PySlowFast's BGR-ordered values."""
    return np.asarray(mean, np.float32)[::-1], np.asarray(std, np.float32)[::-1]


@functools.lru_cache(maxsize=8)
def _lookup_tables(
    normalization: tuple[tuple[float, ...], tuple[float, ...], bool] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """What `_to_chw` makes of each byte: float32 [3, 256] (row c: RGB channel c's value x / 255,
    then (x - mean) / std with `normalization`'s BGR-ordered mean and std when given), computed
    by the very float32 operations of the whole-clip expressions; and int64 [3], the output
    channel of each RGB channel (reversed if bgr)."""
    tables = np.empty((3, 256), np.float32)
    for c in range(3):
        np.divide(np.arange(256, dtype=np.uint8), _255, out=tables[c], dtype=np.float32)
    if normalization is None:
        return tables, np.arange(3)
    mean, std, bgr = normalization
    mean_rgb, std_rgb = _channel_stats(mean, std)
    for c in range(3):
        _standardize(tables[c], mean_rgb[c], std_rgb[c], out=tables[c])
    return tables, np.arange(3)[::-1].copy() if bgr else np.arange(3)


def _to_chw(
    frames: np.ndarray | Sequence[np.ndarray],
    normalization: tuple[tuple[float, ...], tuple[float, ...], bool] | None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 [T, H, W, 3] (or T frames [H, W, 3]) -> float32 [3, T, H, W] = x / 255, then
    (x - mean) / std with `normalization` (mean, std in BGR order, bgr) when given, output
    channels reversed if bgr.

    Each sample is looked up in `_lookup_tables` by the compiled kernel, frame by frame (no
    clip-sized temporary; NumPy and Numba rather than torch: a data-loading process must not
    compete with the training process for cores through torch's intra-op threads)."""
    height, width = frames[0].shape[:2]
    shape = (3, len(frames), height, width)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be contiguous float32 {shape}, got {out.dtype} {out.shape}")
    tables, channels = _lookup_tables(normalization)
    kernel = _normalize_kernel()
    for t, frame in enumerate(frames):
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {t} is {frame.dtype} {frame.shape}, expected uint8 {(height, width, 3)}"
            )
        kernel(frame, tables, channels, out, t)
    return out


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
    use_color_augmentation: bool = False,
    pca_jitter_only: bool = True,
    mean: Sequence[float] = (0.45, 0.45, 0.45),
    std: Sequence[float] = (0.225, 0.225, 0.225),
    bgr: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Training augmentation of one clip, in PySlowFast's order: scale jitter, random crop,
    flip, [colour jitter unless `pca_jitter_only`, PCA lighting] if `use_color_augmentation`,
    normalization.

    frames: uint8 RGB [T, H, W, 3]; boxes_norm: [N, 4] normalized x1, y1, x2, y2.
    Returns (clip float32 [3, T, crop, crop], boxes float32 [M, 4] in crop pixels, kept int64 [M]
    = indices into the N input boxes that are still inside the crop).
    """
    height, width = frames.shape[1:3]
    boxes = boxes_to_pixels(boxes_norm, height, width)
    size = jitter_short_side(rng, jitter_scales[0], jitter_scales[1])
    frames, boxes = scale_short_side(frames, boxes, size)
    height, width = frames.shape[1:3]
    if height < crop_size or width < crop_size:
        raise ValueError(f"crop {crop_size} is larger than the scaled clip {width}x{height}")
    x0, y0 = random_crop_offsets(rng, height, width, crop_size)
    frames, boxes = crop(frames, boxes, x0, y0, crop_size)
    if flip and rng.random() < 0.5:
        frames, boxes = horizontal_flip(frames, boxes)
    boxes = clip_to_last_pixel(boxes, crop_size, crop_size)
    kept = _nonempty(boxes)
    if use_color_augmentation:
        clip = to_chw_float(frames)
        if not pca_jitter_only:
            clip = color_jitter(clip, rng)
        normalized = normalize(pca_lighting(clip, rng), mean, std, bgr, in_place=True)
    else:
        normalized = to_normalized_chw(frames, mean, std, bgr)
    return normalized, torch.from_numpy(boxes[kept].astype(np.float32)), kept


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
    [3, T, H', W'] with (H', W') = `short_side_size`, boxes float32 [N, 4] in H' x W' pixels,
    clipped). No box is dropped. The clip is `to_normalized_chw` of `scale_frames` (each
    output frame depends on its input frame only: frames that overlapping clips share can be
    transformed once; the test loader keeps them scaled, `InputFormat` normalizes them), the
    boxes `test_boxes`.
    """
    height, width = frames.shape[1:3]
    clip = to_normalized_chw(scale_frames(frames, short_side), mean, std, bgr)
    return clip, test_boxes(boxes_norm, height, width, short_side=short_side)


def test_boxes(
    boxes_norm: np.ndarray, height: int, width: int, *, short_side: int = 256
) -> torch.Tensor:
    """The boxes of `test_transform` for `height` x `width` frames: normalized [N, 4] ->
    float32 [N, 4] in the scaled frame's pixels, clipped to its last pixel."""
    boxes = _scale_boxes(boxes_to_pixels(boxes_norm, height, width), height, width, short_side)
    scaled = short_side_size(height, width, short_side)
    return torch.from_numpy(clip_to_last_pixel(boxes, *scaled).astype(np.float32))


@dataclass(frozen=True)
class InputFormat:
    """How test frames become the model's inputs: each uint8 RGB sample x gives
    ``(x / 255 - mean) / std`` in float32 (`mean` and `std` indexed in BGR order, as in
    PySlowFast's AVA loader), the channels reversed if `bgr`, and the clip is split into the
    pathways of `arch` (`pack_pathways` with `alpha`). Test batches carry their frames as
    uint8, a quarter of float32's bytes (what loader workers write and send, and a GPU copies),
    and `inputs` brings them to the model where it runs."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    bgr: bool
    arch: str
    alpha: int

    def __post_init__(self) -> None:
        if self.arch not in PATHWAY_ARCHS:
            raise ValueError(f"unknown MODEL.ARCH {self.arch!r}; expected one of {PATHWAY_ARCHS}")

    def shapes(self, frames_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """The shapes of `inputs` of frames [B, T, H, W, 3]: [B, 3, T_p, H, W] per pathway."""
        batch, frames, height, width = frames_shape[:4]
        fast = (batch, 3, frames, height, width)
        if self.arch == "slow":
            return [fast]
        return [(batch, 3, len(slow_indices(frames, self.alpha)), height, width), fast]

    def buffers(self, frames_shape: Sequence[int]) -> list[torch.Tensor]:
        """Uninitialized CPU tensors for `inputs` of frames [B, T, H, W, 3], to be reused batch
        after batch (a fresh tensor's first touch costs about as much as filling it)."""
        return [torch.empty(shape) for shape in self.shapes(frames_shape)]

    def inputs(
        self, frames: torch.Tensor, out: Sequence[torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """uint8 RGB frames [B, T, H, W, 3] -> the pathway inputs, float32 [B, 3, T_p, H, W],
        on the frames' device. On the CPU by `to_normalized_chw`'s compiled lookup, written into
        `out` (as `buffers` makes them) when given; elsewhere by torch's float32 operations in
        the same order, which give the same values."""
        if frames.dim() != 5 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"expected uint8 frames [B, T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}"
            )
        if frames.device.type != "cpu":
            return pack_pathways(self._normalized_by_torch(frames), self.arch, self.alpha)
        if out is None:
            out = self.buffers(frames.shape)
        expected, got = self.shapes(frames.shape), [tuple(t.shape) for t in out]
        if got != expected:
            raise ValueError(f"out must be tensors of shapes {expected}, got {got}")
        fast = out[-1]
        for clip, target in zip(frames.numpy(), fast, strict=True):
            to_normalized_chw(clip, self.mean, self.std, self.bgr, out=target)
        return pack_pathways(fast, self.arch, self.alpha, slow_out=out[0] if len(out) > 1 else None)

    def _normalized_by_torch(self, frames: torch.Tensor) -> torch.Tensor:
        mean_rgb, std_rgb = (
            torch.from_numpy(stat.copy()).to(frames.device).view(1, 3, 1, 1, 1)
            for stat in _channel_stats(self.mean, self.std)
        )
        clips = frames.permute(0, 4, 1, 2, 3).float()
        clips = clips.div_(torch.full((), 255.0, device=frames.device))
        clips = clips.sub_(mean_rgb).div_(std_rgb)
        return clips.flip(1) if self.bgr else clips
