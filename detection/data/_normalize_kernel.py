"""Numba kernel of `detection.data.transforms.to_normalized_chw` (imported on first use;
compiled once per process, or loaded from Numba's on-disk cache)."""

from __future__ import annotations

import numba


@numba.njit(nogil=True, cache=True)
def normalize_frame(frame, tables, channels, out, t):
    """uint8 [H, W, 3] -> out[channels[c], t] = tables[c][frame[..., c]] for c = 0, 1, 2.

    tables: float32 [3, 256], one output value per input value and channel; out: float32
    [3, T, H, W]. A lookup rather than arithmetic: a value depends only on its byte and channel,
    so 768 precomputed values are exact by construction, and a gather per sample is about twice
    as fast as NumPy's channel-by-channel divisions (which also need `cv2.split`'s planes).
    """
    height, width = frame.shape[0], frame.shape[1]
    for y in range(height):
        row = frame[y]
        for c in range(3):
            table = tables[c]
            target = out[channels[c], t, y]
            for x in range(width):
                target[x] = table[row[x, c]]
