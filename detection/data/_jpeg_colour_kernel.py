"""Numba kernel of `detection.data.jpeg_colour` (imported on first use; the arithmetic and why
float32 is exact are in that module's docstring). Compiled once per process, or loaded from
Numba's on-disk cache."""

from __future__ import annotations

import numba
import numpy as np

# Module-level constants are compiled in as float32: a Python float would promote the
# arithmetic to float64 (half the samples per instruction).
_F = np.float32
_THREE, _SEVEN, _EIGHT, _ONE, _TWO = _F(3), _F(7), _F(8), _F(1), _F(2)
_QUARTER, _SIXTEENTH = _F(1 / 4), _F(1 / 16)
_CENTER, _HALF, _SHIFT16 = _F(128), _F(32768), _F(1 / 65536)
_CR_R, _CB_G, _CR_G, _CB_B = _F(91881), _F(-22554), _F(-46802), _F(116130)
_ZERO, _TOP = _F(0), _F(255)


@numba.njit(nogil=True, cache=True)
def _upsample_row(plane, row, vertical, horizontal, chroma_rows, chroma_width, near_far, out):
    """Chroma of output row `row`: float32 [chroma_width * horizontal] into `out`."""
    here = plane[row // vertical]
    if vertical == 2:
        other = row // 2 - 1 if row % 2 == 0 else row // 2 + 1
        there = plane[min(max(other, 0), chroma_rows - 1)]
        for c in range(chroma_width):
            near_far[c] = _THREE * _F(here[c]) + _F(there[c])
    else:
        for c in range(chroma_width):
            near_far[c] = _F(here[c])
    if horizontal == 1:
        for c in range(chroma_width):
            out[c] = near_far[c]
        return
    # 4:2:0 sums carry a factor 4 from the vertical step: / 16 instead of / 4.
    scale = _SIXTEENTH if vertical == 2 else _QUARTER
    even_bias = _EIGHT if vertical == 2 else _ONE
    odd_bias = _SEVEN if vertical == 2 else _TWO
    last = chroma_width - 1
    for c in range(chroma_width):
        left = near_far[max(c - 1, 0)]
        right = near_far[min(c + 1, last)]
        out[2 * c] = np.floor((_THREE * near_far[c] + left + even_bias) * scale)
        out[2 * c + 1] = np.floor((_THREE * near_far[c] + right + odd_bias) * scale)


@numba.njit(nogil=True, cache=True)
def convert(y, cb, cr, width, height, horizontal, vertical, rgb):
    """Full-range planes y uint8 [>= H, >= W], cb / cr uint8 [>= ceil(H / v), >= ceil(W / h)]
    -> planar RGB uint8 [3, H, W] into `rgb`."""
    chroma_rows = (height + vertical - 1) // vertical
    chroma_width = (width + horizontal - 1) // horizontal
    near_far = np.empty(chroma_width, np.float32)
    blue = np.empty(chroma_width * horizontal, np.float32)
    red = np.empty(chroma_width * horizontal, np.float32)
    for row in range(height):
        _upsample_row(cb, row, vertical, horizontal, chroma_rows, chroma_width, near_far, blue)
        _upsample_row(cr, row, vertical, horizontal, chroma_rows, chroma_width, near_far, red)
        luma = y[row]
        out_r, out_g, out_b = rgb[0, row], rgb[1, row], rgb[2, row]
        for x in range(width):
            lum = _F(luma[x])
            b = blue[x] - _CENTER
            r = red[x] - _CENTER
            red_value = lum + np.floor((_CR_R * r + _HALF) * _SHIFT16)
            green_value = lum + np.floor((_CB_G * b + _CR_G * r + _HALF) * _SHIFT16)
            blue_value = lum + np.floor((_CB_B * b + _HALF) * _SHIFT16)
            out_r[x] = np.uint8(min(max(red_value, _ZERO), _TOP))
            out_g[x] = np.uint8(min(max(green_value, _ZERO), _TOP))
            out_b[x] = np.uint8(min(max(blue_value, _ZERO), _TOP))
