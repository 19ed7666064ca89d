"""Speed of `jpeg_rgb` (the exact libjpeg colour path of the video reader) against OpenCV
formulations of the same arithmetic, on real 720p frames, all outputs checked equal.

Frames: vtest.avi (../shared/media) decoded at spread-out times, upscaled to 1280x720
(bicubic) and converted by swscale to yuv420p, yuv422p, yuv444p (limited range) and yuvj420p
(full range). Implementations:

- before: the reader's first version, OpenCV calls (upsampling as `cv2.filter2D` with
  libjpeg's taps and biases, tables by `cv2.LUT`; every temporary a new whole-frame array,
  ~18 MB per 720p frame). Its successor (the same calls in 128-row blocks with reused
  temporaries) measured 1.2-3x faster than this, depending on the allocator.
- saturating: R = (y +sat pos_r[cr]) -sat neg_r[cr] with uint8 tables pos = max(t, 0),
  neg = max(-t, 0) of libjpeg's offset t (exact: one of the two is 0, so this is
  clamp(y + t, 0, 255)), B likewise from cb, G's offset from a 65536-entry table indexed by
  cb * 256 + cr (one numpy gather), whole-frame temporaries.
- now: `detection.data.video.jpeg_rgb`: one Numba-compiled pass per row in float32
  (`detection.data.jpeg_colour`), after `cv2.LUT`'s range expansion.

Timing: repetitions interleave the implementations over the same frames; each
(implementation, frame) keeps its fastest of the repetitions (the machine may be shared), and a
row averages those over the frames. One OpenCV thread unless --threads. The memory allocator's
state changes the picture (whole-frame temporaries that glibc hands out as fresh mmap pages
fault in on every frame), so the script runs twice by default: as is, and in a child process
with MALLOC_MMAP_THRESHOLD_=131072 (every array of 128 KB or more freshly mapped, the state a
long-running loader often reaches).

    .venv/bin/python benchmarks/colour_path.py [--frames 6] [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detection.data import jpeg_colour, video  # noqa: E402

VTEST = Path(__file__).resolve().parents[2] / "shared" / "media" / "vtest.avi"
FORMATS = ("yuv420p", "yuv422p", "yuv444p", "yuvj420p")
SIZE = (1280, 720)


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Full-range uint8 planes (luma [H, W], chroma at their own size) and the subsampling."""
    name = frame.format.name
    full_range = name.startswith("yuvj")
    planes = []
    for index, plane in enumerate(frame.planes[:3]):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        samples = rows[:, : plane.width]
        table = jpeg_colour.CHROMA_TO_FULL if index else jpeg_colour.LUMA_TO_FULL
        planes.append(np.ascontiguousarray(samples) if full_range else cv2.LUT(samples, table))
    return planes[0], planes[1], planes[2], video._PLANAR_YUV[name]


def _fix(x: float) -> int:
    return int(x * 65536 + 0.5)


# libjpeg's "fancy" upsampling as OpenCV filters: floor((taps . samples + bias) / 2^s) =
# round((taps . samples + bias - (2^s - 1) / 2) / 2^s), never a tie, exact in float32.
_LEFT, _RIGHT = np.array([1.0, 3.0, 0.0]), np.array([0.0, 3.0, 1.0])
_H2V1 = [(_LEFT[None] / 4, (1 - 1.5) / 4), (_RIGHT[None] / 4, (2 - 1.5) / 4)]
_H2V2 = [
    [
        (np.outer(vertical, _LEFT) / 16, (8 - 7.5) / 16),
        (np.outer(vertical, _RIGHT) / 16, (7 - 7.5) / 16),
    ]
    for vertical in (_LEFT, _RIGHT)
]


def _upsample_before(plane: np.ndarray, vertical: bool, size: tuple[int, int]) -> np.ndarray:
    height, width = plane.shape
    row_kinds = _H2V2 if vertical else [_H2V1]
    rows = [
        cv2.merge(
            [
                cv2.filter2D(
                    plane,
                    cv2.CV_8U,
                    taps.astype(np.float32),
                    delta=delta,
                    borderType=cv2.BORDER_REPLICATE,
                )
                for taps, delta in kind
            ]
        ).reshape(height, 2 * width)
        for kind in row_kinds
    ]
    out = rows[0] if len(rows) == 1 else np.stack(rows, axis=1).reshape(2 * height, 2 * width)
    return out[: size[1], : size[0]]


def _full_chroma(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    luma, cb, cr, (horizontal, vertical) = _planes(frame)
    if horizontal == 2:
        size = (frame.width, frame.height)
        cb, cr = (_upsample_before(c, vertical == 2, size) for c in (cb, cr))
    return luma, cb, cr


_C = np.arange(256, dtype=np.int64) - 128
_CR_R = ((_fix(1.40200) * _C + 32768) >> 16).astype(np.int16)
_CB_B = ((_fix(1.77200) * _C + 32768) >> 16).astype(np.int16)
# The float32 green tables the old code gathered from (libjpeg's terms in units of 2^-16).
_CB_G = (-_fix(0.34414) * _C / 65536).astype(np.float32)
_CR_G = ((1 - _fix(0.71414) * _C) / 65536).astype(np.float32)


def before(frame: av.VideoFrame) -> np.ndarray:
    luma, cb, cr = _full_chroma(frame)
    green = cv2.add(cv2.LUT(cb, _CB_G), cv2.LUT(cr, _CR_G), dtype=cv2.CV_16S)
    offsets = (cv2.LUT(cr, _CR_R), green, cv2.LUT(cb, _CB_B))
    return cv2.merge([cv2.add(luma, offset, dtype=cv2.CV_8U) for offset in offsets])


def _split(offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.maximum(offset, 0).astype(np.uint8), np.maximum(-offset, 0).astype(np.uint8)


_RED_POS, _RED_NEG = _split((_fix(1.40200) * _C + 32768) >> 16)
_BLUE_POS, _BLUE_NEG = _split((_fix(1.77200) * _C + 32768) >> 16)
# [cb * 256 + cr]: libjpeg's green offset.
_GREEN_POS, _GREEN_NEG = _split(
    ((-_fix(0.34414) * _C[:, None] + 32768 - _fix(0.71414) * _C[None, :]) >> 16).ravel()
)


def saturating(frame: av.VideoFrame) -> np.ndarray:
    luma, cb, cr = _full_chroma(frame)
    # [H, W, 2] uint8 (cr, cb) read as little-endian uint16 is cb * 256 + cr.
    pair = cv2.merge([cr, cb]).view(np.uint16)[..., 0]
    channels = [
        cv2.subtract(cv2.add(luma, np.take(pos, index)), np.take(neg, index))
        for pos, neg, index in (
            (_RED_POS, _RED_NEG, cr),
            (_GREEN_POS, _GREEN_NEG, pair),
            (_BLUE_POS, _BLUE_NEG, cb),
        )
    ]
    return cv2.merge(channels)


def now(frame: av.VideoFrame) -> np.ndarray:
    return video.jpeg_rgb(frame)


IMPLEMENTATIONS: dict[str, Callable[[av.VideoFrame], np.ndarray]] = {
    "before": before,
    "saturating": saturating,
    "now": now,
}


def real_frames(count: int) -> list[np.ndarray]:
    """`count` RGB frames of vtest.avi, spread over the video, upscaled to 1280x720."""
    with av.open(str(VTEST)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picks = np.linspace(0, len(decoded) - 1, count).round().astype(int)
    return [cv2.resize(decoded[i], SIZE, interpolation=cv2.INTER_CUBIC) for i in picks]


def measure(images: list[np.ndarray], repeats: int) -> None:
    print(f"{'format':10s}" + "".join(f"{n:>12s}" for n in IMPLEMENTATIONS) + "  before/now")
    for pix_fmt in FORMATS:
        frames = [
            av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            for image in images
        ]
        for frame in frames:
            want = before(frame)
            for name, convert in IMPLEMENTATIONS.items():
                if not np.array_equal(convert(frame), want):
                    raise SystemExit(f"{name} differs from before on {pix_fmt}")
        best = {name: np.full(len(frames), np.inf) for name in IMPLEMENTATIONS}
        for _ in range(repeats):
            for name, convert in IMPLEMENTATIONS.items():
                for index, frame in enumerate(frames):
                    start = time.perf_counter()
                    convert(frame)
                    elapsed = time.perf_counter() - start
                    best[name][index] = min(best[name][index], elapsed)
        ms = {name: 1000 * float(times.mean()) for name, times in best.items()}
        cells = "".join(f"{ms[name]:12.2f}" for name in IMPLEMENTATIONS)
        print(f"{pix_fmt:10s}{cells}  {ms['before'] / ms['now']:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    images = real_frames(args.frames)
    print(f"ms per 1280x720 frame, fastest of {args.repeats} per frame, {args.frames} frames")
    print("allocator: " + ("every >=128 KB array freshly mapped" if args.child else "as is"))
    measure(images, args.repeats)
    if not args.child:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
        subprocess.run([sys.executable, *sys.argv, "--child"], env=env, check=True)


if __name__ == "__main__":
    main()
