"""What `ffmpeg -i VIDEO -r 30 -q:v 1 %06d.jpg` gives, frame by frame: the reference that
tests/test_frame_rules.py and benchmarks/frame_rules.py compare the video backend with.
A plain module (not collected as tests)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from detection.data.video import jpeg_rgb


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def extract_at_30fps(video: Path, out: Path) -> list[Path]:
    """Run PySlowFast's extraction (`-r 30 -q:v 1` JPEGs) of `video` into `out`, and in the same
    pass ffmpeg's full-range samples of each frame (`%06d.yuv`, yuvj420p) before JPEG coding.
    Returns the sample files in frame order."""
    run_ffmpeg(
        "-i", str(video),
        "-r", "30", "-q:v", "1", str(out / "%06d.jpg"),
        "-r", "30", "-f", "image2", "-c:v", "rawvideo", "-pix_fmt", "yuvj420p",
        str(out / "%06d.yuv"),
    )  # fmt: skip
    return sorted(out.glob("*.yuv"))


def reference_frames(raws: list[Path], width: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each sample file of `extract_at_30fps`: (its samples as OpenCV would read them from a
    lossless JPEG, uint8 RGB [H, W, 3]; the JPEG ffmpeg wrote, read by OpenCV, uint8 RGB)."""
    for raw in raws:
        samples = np.frombuffer(raw.read_bytes(), np.uint8).reshape(-1, width)
        expected = jpeg_rgb(av.VideoFrame.from_ndarray(samples, format="yuvj420p"))
        jpeg = cv2.cvtColor(cv2.imread(str(raw.with_suffix(".jpg"))), cv2.COLOR_BGR2RGB)
        yield expected, jpeg
