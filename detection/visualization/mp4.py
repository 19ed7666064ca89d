"""Streaming MP4 writer (PyAV): each frame is encoded and muxed as it comes, nothing is
buffered beyond the encoder's own look-ahead."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

# MPEG's 90 kHz clock: fine enough to keep the timing of any source (a 1/1000 or 1/15360 s
# time base is within one of its ticks) for writers given frame times.
TIMED_TIME_BASE = Fraction(1, 90000)

# H.264 when PyAV's bundled FFmpeg has libx264 (the PyPI wheels do); MPEG-4 Part 2 otherwise.
_Codec = Literal["libx264", "mpeg4"]
_CODECS: tuple[_Codec, ...] = ("libx264", "mpeg4")


def _pick_codec() -> _Codec:
    for codec in _CODECS:
        if codec in av.codecs_available:
            return codec
    raise RuntimeError(f"PyAV's FFmpeg has none of the encoders {_CODECS}")


class Mp4Writer:
    """Write uint8 RGB frames [H, W, 3] to an MP4 file as yuv420p video.

    The first frame fixes the size; yuv420p needs even width and height, so an odd size
    (427x241) is padded with black on the right/bottom edge to the next even one (428x242).
    Frames get consecutive timestamps at `fps`, or, when `write` is given each frame's time,
    those times (from the first frame's; variable frame rate input keeps its timing): pts in
    `time_base` ticks (default 1/fps; give `TIMED_TIME_BASE` to write times), `fps` is then the
    stream's nominal rate and the last frame's duration.

    The video is written to a temporary file beside `path` and renamed over it by `close`, so
    `path` never holds a partial video: a run that fails or is killed leaves the previous file
    (or none). Use as a context manager: a clean exit calls `close` (idempotent, flushes the
    encoder), an exception calls `abort`. A writer closed before its first frame writes no file
    (a video needs a size).
    """

    def __init__(
        self, path: str | Path, fps: float, *, crf: int = 20, time_base: Fraction | None = None
    ):
        if not fps or fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.time_base = time_base or 1 / self.fps
        # One nominal frame in ticks: the step between untimed frames, the last one's duration.
        self._frame_ticks = max(1, round(1 / (self.fps * self.time_base)))
        self._first_time: float | None = None
        self._last_pts = -1
        self.codec = _pick_codec()
        self._crf = crf
        self._tmp_path = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._container: av.container.OutputContainer | None = av.open(
            str(self._tmp_path), mode="w", format="mp4"
        )
        # The stream and the (height, width) of its input frames, from the first frame on.
        self._video: tuple[av.VideoStream, int, int] | None = None
        self.frames_written = 0

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _open_stream(
        self, container: av.container.OutputContainer, height: int, width: int, timed: bool
    ) -> av.VideoStream:
        stream = container.add_stream(self.codec, rate=self.fps)
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        if self.codec == "libx264":
            stream.options = {"crf": str(self._crf)}
        if timed:
            # B-frames give decode timestamps shifted from the presentation ones; with
            # irregular frame times mp4 then ends the video (its edit list) before the last
            # frames have been shown.
            stream.codec_context.max_b_frames = 0
        return stream

    def write(self, frame_rgb: np.ndarray, time_s: float | None = None) -> None:
        """Encode one uint8 RGB frame [H, W, 3] of the same size as the first, at `time_s`
        (s, any origin; None: one nominal frame after the previous). A time that rounds onto
        or before the previous frame's tick is moved one tick after it (pts must increase)."""
        if self._container is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} must be uint8 RGB [H, W, 3], "
                f"got {frame_rgb.dtype} {list(frame_rgb.shape)}"
            )
        height, width = frame_rgb.shape[:2]
        if self._video is None:
            stream = self._open_stream(self._container, height, width, time_s is not None)
            self._video = (stream, height, width)
        stream, video_height, video_width = self._video
        if (height, width) != (video_height, video_width):
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {width}x{height}, the video is "
                f"{video_width}x{video_height}"
            )
        if height % 2 or width % 2:
            frame_rgb = np.pad(frame_rgb, ((0, height % 2), (0, width % 2), (0, 0)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        if time_s is None:
            pts = self._last_pts + self._frame_ticks if self.frames_written else 0
        else:
            if self._first_time is None:
                self._first_time = time_s
            pts = round((time_s - self._first_time) / self.time_base)
        pts = max(pts, self._last_pts + 1)
        frame.pts = pts
        frame.time_base = self.time_base
        frame.duration = self._frame_ticks
        self._last_pts = pts
        self._container.mux(stream.encode(frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished video to `path`."""
        if self._container is None:
            return
        try:
            if self._video is not None:
                self._container.mux(self._video[0].encode(None))
        except BaseException:
            self.abort()
            raise
        self._container.close()
        self._container = None
        if self.frames_written:
            os.replace(self._tmp_path, self.path)
        else:
            self._tmp_path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Stop without producing `path` (the temporary file is removed)."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass  # the partial file is deleted below anyway
            self._container = None
        self._tmp_path.unlink(missing_ok=True)
