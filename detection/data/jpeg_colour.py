"""The colours of ffmpeg's JPEGs read by OpenCV, computed from a video frame's Y'CbCr planes.

What is computed (the video reader's colour rule, `detection.data.video`): ffmpeg hands the
MJPEG encoder full-range Y'CbCr with the source's own samples (limited range expanded to full
with swscale's integer arithmetic: `LUMA_TO_FULL`, `CHROMA_TO_FULL`), and libjpeg decodes them
as JFIF (BT.601, full range) with "fancy" chroma upsampling. This module reproduces libjpeg's
integer arithmetic exactly:

- upsampling by 2 horizontally (4:2:0 and 4:2:2): each output sample is 3/4 of its chroma
  sample plus 1/4 of the neighbour on its side, edges replicated; 4:2:0 first does the same
  vertically without rounding (``t = 3 near + far``), then rounds the horizontal step as
  ``(3 t + t_side + 8) >> 4`` (even outputs) and ``(... + 7) >> 4`` (odd); 4:2:2 rounds
  ``(3 s + s_side + 1) >> 2`` and ``(... + 2) >> 2``;
- colour: ``R = y + ((91881 (cr - 128) + 32768) >> 16)``, ``G = y + ((-22554 (cb - 128) -
  46802 (cr - 128) + 32768) >> 16)``, ``B = y + ((116130 (cb - 128) + 32768) >> 16)``, each
  clamped to 0..255 (libjpeg's FIX(1.402), FIX(0.34414), FIX(0.71414), FIX(1.772) tables).

The kernel is compiled by Numba (once per process, or loaded from Numba's on-disk cache) and
computes in float32: every intermediate above is an integer of magnitude below 2^24, which
float32 holds exactly, and ``>> k`` is ``floor(x * 2^-k)``, exact too; float32 lets the CPU
work on 8 samples per instruction where the int64 that Numba promotes integers to would not.
1.9-2.6x faster per 720p frame than the same arithmetic as whole-frame OpenCV calls
(benchmarks/colour_path.py).
tests/test_video.py checks it against libjpeg's formulas written out in plain integers and
against OpenCV's reading of real JPEGs.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np


def _range_expansion_table(chroma: bool) -> np.ndarray:
    """uint8 [256]: limited-range 8-bit sample -> full range, exactly as swscale converts it
    (15-bit intermediate, FFmpeg's integer coefficients, output rounding +64 >> 7)."""
    wide = np.arange(256, dtype=np.int64) << 7
    if chroma:
        wide = (np.minimum(wide, 30775) * 4663 - 9289992) >> 12
    else:
        wide = (np.minimum(wide, 30189) * 19077 - 39057361) >> 14
    return np.clip((wide + 64) >> 7, 0, 255).astype(np.uint8)


LUMA_TO_FULL = _range_expansion_table(chroma=False)
CHROMA_TO_FULL = _range_expansion_table(chroma=True)
# (horizontal, vertical) chroma subsampling factors the kernel takes.
SUBSAMPLINGS = ((2, 2), (2, 1), (1, 1))

_kernel: Any = None
_kernel_lock = threading.Lock()
_scratch_buffers = threading.local()


def _load_kernel() -> Any:
    """The Numba kernel (`_jpeg_colour_kernel.convert`), imported on first use: importing Numba
    takes ~0.4 s, which processes that never convert a frame do not pay."""
    from ._jpeg_colour_kernel import convert

    return convert


def prepare() -> None:
    """Import the kernel now (Numba's import and the compiled code's load, ~0.5-0.9 s) rather
    than at the first frame (`detection.data.video.prepare_color`)."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = _load_kernel()


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """This thread's reusable uint8 buffer `name` (uninitialized; replaced when the shape
    changes), so that converting a frame writes into memory the process already has (fresh
    whole-frame arrays page-fault in on every frame in a long-running loader)."""
    buffers: dict[str, np.ndarray] | None = getattr(_scratch_buffers, "buffers", None)
    if buffers is None:
        buffers = _scratch_buffers.buffers = {}
    buffer = buffers.get(name)
    if buffer is None or buffer.shape != shape:
        buffer = buffers[name] = np.empty(shape, np.uint8)
    return buffer


def ycbcr_to_jpeg_rgb(
    planes: tuple[np.ndarray, np.ndarray, np.ndarray],
    size: tuple[int, int],
    subsampling: tuple[int, int],
    full_range: bool,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """RGB of 8-bit planar Y'CbCr as described in the module docstring.

    planes: (Y uint8 [>= H, >= W], Cb, Cr uint8 [>= ceil(H / v), >= ceil(W / h)]), rows may be
    padded (only the first H x W / chroma samples are read); size: (W, H); subsampling: (h, v)
    of `SUBSAMPLINGS`; full_range: samples are full range (else limited, expanded first).
    Returns uint8 [H, W, 3], written into `out` (uint8 [H, W, 3], contiguous) when given.
    Safe to call from several threads at once (per-thread scratch; the kernel releases the GIL).
    """
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling must be one of {SUBSAMPLINGS}, got {subsampling}")
    width, height = size
    if _kernel is None:
        prepare()
    if not full_range:
        planes = tuple(  # type: ignore[assignment]
            cv2.LUT(
                plane, CHROMA_TO_FULL if index else LUMA_TO_FULL, dst=_scratch(name, plane.shape)
            )
            for index, (plane, name) in enumerate(zip(planes, ("y", "cb", "cr"), strict=True))
        )
    planar = _scratch("rgb", (3, height, width))
    _kernel(*(np.ascontiguousarray(p) for p in planes), width, height, *subsampling, planar)
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    elif out.shape != (height, width, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be contiguous uint8 {(height, width, 3)}, got {out.dtype} {out.shape}"
        )
    cv2.merge(list(planar), dst=out)
    return out
