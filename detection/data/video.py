"""Frames from video files (PyAV) and from PySlowFast's extracted-frame layout.

PySlowFast's AVA weights were trained and tested on JPEGs made by
``ffmpeg -i VIDEO -r 30 -q:v 1 OUT/%06d.jpg`` and read with OpenCV. By default `VideoReader`
gives the pixels of those JPEGs (less JPEG's quantization) straight from the video:

Frame rule (``frame_rule="ffmpeg"``, default): layout frame ``n`` (time ``n / layout_fps``) is
the source frame that ffmpeg's ``-r`` output option writes as file ``n + 1``. That option is
the command-line tool's constant-frame-rate sync (not the ``fps`` filter): every decoded frame,
in presentation order, is placed at ``x = (pts - file start) * layout_fps`` output ticks
(rounded to 1/65536 tick, plus 1/131072) and lasts ``d`` ticks (its packet duration in ticks,
rounded half-to-even, when that is at least 1, else ``min(layout_fps / stream fps, 1)``).
With ``next`` the next free output tick, ``delta0 = x - next`` and ``delta = delta0 + d``: a
frame that starts early but overlaps the free tick (``delta0 < 0 < delta``) is moved to it;
then the frame is written ``0`` times if ``delta < -1.1``, ``round(delta)`` times if
``delta > 1.1`` (of which the first ``round(delta0 - 0.6)`` are the previous frame when
``delta0 > 1.1``), else once. A stream that is the file's only stream does not repeat its first
frame to fill a late start (``delta0 >= 0.5``). At the end the last frame is repeated the median
of the last three previous-frame repeat counts. The "file start" is the earliest start of any
stream (audio often starts first). This is ffmpeg's ``do_video_out`` of versions 4.x-5.x (read
from the source; checked against ffmpeg 5.1 by tests/test_frame_rules.py and
benchmarks/frame_rules.py). Because it needs every frame's timestamp, the reader reads the
packet timestamps once (demuxing only, no decoding, about 1 s for a 15-minute AVA cut) on the
first `read_at_times`; a process keeps the result for its last 64 videos.
``frame_rule="nearest"`` takes the decoded frame whose time is nearest ``t`` instead (the
earlier on a tie), as this reader did before; the two agree on 30 fps video.

Colour rule (``color="jpeg_bt601"``, default): ffmpeg hands the MJPEG encoder full-range
Y'CbCr with the source's own samples (limited range expanded to full with swscale's integer
arithmetic, the matrix untouched), and OpenCV's libjpeg decodes them as JFIF (BT.601, full range)
with "fancy" (triangular) chroma upsampling. `jpeg_rgb` reproduces both steps exactly, so a
BT.709 HD video gives the same, BT.601-interpreted, colours as its JPEGs (exact for 8-bit planar
4:2:0, 4:2:2 and 4:4:4 video; other pixel formats are first converted to 4:2:0). ``color="stream"``
converts with the stream's own colour tags through swscale instead (BT.709 for tagged HD), for
models trained that way.

Time rule of `read_at_times`: time ``t`` is layout frame ``round(t * layout_fps)`` under the
ffmpeg rule (times are meant to lie on the layout grid); under the nearest rule any time works,
variable frame rates included. Times before the first frame give the first frame; times after
the end of the video give the last frame.

Seeking: the reader seeks once to the key frame at or before the earliest wanted frame and
decodes forward only until every wanted frame is served; it never loads a whole video.

Rotation: when the stream carries a display matrix with a multiple of 90 degrees (phone videos),
frames are rotated to display orientation (as ffmpeg does) and `size` reports the displayed
(W, H).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from detection.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi")
FRAME_RULES = ("ffmpeg", "nearest")
COLORS = ("jpeg_bt601", "stream")
FrameRule = Literal["ffmpeg", "nearest"]
Color = Literal["jpeg_bt601", "stream"]
# Continue the previous read's decoding (rather than seek) for wanted times up to this far ahead;
# decoding 2 s forward costs less than a seek into a typical 2-10 s GOP.
_RESUME_MAX_S = 2.0
# Videos whose layout (one int64 per layout frame, 216 KB for a 15-minute AVA cut) a process
# keeps, so that reopening a video (the dataset keeps a few readers open) reads no packets.
_LAYOUT_CACHE_SIZE = 64
# Two frame times closer than this are a tie (float rounding of i / fps and pts x time_base).
_TIE_EPS_S = 1e-6
# Planar Y'CbCr layouts whose samples go to the JPEG encoder as they are, by chroma subsampling
# (horizontal, vertical); anything else is first converted to 4:2:0.
_PLANAR_YUV = {
    "yuv420p": (2, 2),
    "yuvj420p": (2, 2),
    "yuv422p": (2, 1),
    "yuvj422p": (2, 1),
    "yuv444p": (1, 1),
    "yuvj444p": (1, 1),
}


class VideoReadError(UserError, RuntimeError):
    """A video or frame file is missing, unreadable, truncated or corrupt; names the file."""


def find_video(video_dir: str | Path, video_id: str) -> Path:
    """`video_dir/{video_id}{ext}` for the first extension of `VIDEO_EXTENSIONS` that exists."""
    video_dir = Path(video_dir)
    for ext in VIDEO_EXTENSIONS:
        path = video_dir / f"{video_id}{ext}"
        if path.is_file():
            return path
    raise VideoReadError(
        f"no video for id {video_id!r} in {video_dir} (looked for {', '.join(VIDEO_EXTENSIONS)})"
    )


def _round_half_away(x: Fraction) -> int:
    """Nearest integer, halves away from zero (FFmpeg's AV_ROUND_NEAR_INF)."""
    n = math.floor(abs(x) + Fraction(1, 2))
    return n if x >= 0 else -n


def _lrintf(x: float) -> int:
    """C's lrintf: to single precision, then to the nearest integer with halves to even."""
    return int(np.rint(np.float32(x)))


def ffmpeg_cfr_frames(
    positions: Sequence[float] | np.ndarray,
    durations: Sequence[float] | np.ndarray,
    single_stream: bool,
) -> np.ndarray:
    """Which source frame each output frame of ffmpeg's ``-r`` (constant frame rate) output is.

    `positions`: each source frame's start in output ticks, in presentation order, as ffmpeg
    computes it (see `ffmpeg_positions`); `durations`: each frame's length in output ticks (see
    `ffmpeg_durations`); `single_stream`: the video is its file's only stream. Returns int64
    [num_output_frames], source frame index (into `positions`) of each output frame. The rule is
    in this module's docstring.
    """
    chosen: list[int] = []
    next_tick = 0
    repeats_of_previous = [0, 0, 0]  # newest first
    for k, (position, duration) in enumerate(
        zip(np.asarray(positions).tolist(), np.asarray(durations).tolist(), strict=True)
    ):
        delta0 = position - next_tick
        delta = delta0 + duration
        if delta0 < 0 < delta:
            delta0 = 0.0  # starts early but overlaps the free tick: clipped to it
        if single_stream and not chosen and delta0 >= 0.5:
            next_tick = int(np.rint(position))
            delta, delta0 = delta - delta0, 0.0
        count, previous = 1, 0
        if delta < -1.1:
            count = 0
        elif delta > 1.1:
            count = _lrintf(delta)
            if delta0 > 1.1:
                previous = _lrintf(delta0 - 0.6)
        previous = min(previous, count)
        repeats_of_previous = [previous, *repeats_of_previous[:2]]
        chosen += [k - 1 if (i < previous and k > 0) else k for i in range(count)]
        next_tick += count
    if len(positions):
        chosen += [len(positions) - 1] * sorted(repeats_of_previous)[1]
    return np.asarray(chosen, dtype=np.int64)


@functools.lru_cache(maxsize=_LAYOUT_CACHE_SIZE)
def _layout_source_pts(path: str, size: int, mtime_ns: int, layout_fps: float) -> np.ndarray:
    """int64 [num_layout_frames]: pts of the source frame of each layout frame of the video at
    `path` under ffmpeg's rule (`size` and `mtime_ns` key the cache to the file's version)."""
    packets: list[tuple[int, int]] = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                pts = packet.pts if packet.pts is not None else packet.dts
                if packet.size and pts is not None and not packet.is_discard:
                    packets.append((pts, packet.duration or 0))
        except av.FFmpegError:
            pass  # a truncated file: its readable frames; reads past them are checked later
        single_stream = len(container.streams) == 1
        file_start_us = container.start_time or 0
        time_base, rate = stream.time_base, stream.guessed_rate
    if not packets or time_base is None:
        raise VideoReadError(f"{path}: no video packet has a timestamp")
    packets.sort()
    source = np.array(packets, dtype=np.int64).reshape(-1, 2)
    out_rate = Fraction(layout_fps).limit_denominator(1_000_000)
    chosen = ffmpeg_cfr_frames(
        ffmpeg_positions(source[:, 0], time_base, file_start_us, out_rate),
        ffmpeg_durations(source[:, 1], time_base, out_rate, rate),
        single_stream,
    )
    return source[chosen, 0]


def _divide_half_away(numerator: np.ndarray, denominator: int) -> np.ndarray:
    """int64 numerator / positive denominator, rounded to nearest with halves away from zero."""
    magnitude = (2 * np.abs(numerator) + denominator) // (2 * denominator)
    return np.where(numerator < 0, -magnitude, magnitude)


def ffmpeg_positions(
    pts: Sequence[int] | np.ndarray, time_base: Fraction, file_start_us: int, out_rate: Fraction
) -> np.ndarray:
    """Start of each frame in output ticks as ffmpeg's sync sees it: ``pts`` (stream time base)
    shifted by the file's start (microseconds, rounded into the time base), rescaled to
    1 / (`out_rate` x 2^b) ticks (b = extra precision bits, 16 for 30 fps) with rounding to
    nearest, plus 1/131072 away from zero (ffmpeg's guard against exact midpoints). float64 [N]."""
    offset = _round_half_away(Fraction(-file_start_us, 1_000_000) / time_base)
    tick = 1 / out_rate
    bits = min(16, max(0, 29 - (tick.denominator.bit_length() - 1)))
    # (pts + offset) x time_base / tick x 2^bits, exactly in integers.
    scale = time_base / tick * (1 << bits)
    shifted = np.asarray(pts, dtype=np.int64) + offset
    fine = _divide_half_away(shifted * scale.numerator, scale.denominator) / (1 << bits)
    return fine + np.sign(fine) / 131072


def ffmpeg_durations(
    packet_durations: Sequence[int] | np.ndarray,
    time_base: Fraction,
    out_rate: Fraction,
    stream_rate: Fraction | None,
) -> np.ndarray:
    """Each frame's length in output ticks as ffmpeg's sync sees it (input without filters):
    the packet duration in ticks (in single precision, halves to even) when that is at least
    1, otherwise ``min(out_rate / stream_rate, 1)``. float64 [N]."""
    fallback = min(float(out_rate / stream_rate), 1.0) if stream_rate else 0.0
    ticks = np.asarray(packet_durations, dtype=np.float64) * float(time_base * out_rate)
    ticks = np.rint(ticks.astype(np.float32)).astype(np.float64)
    return np.where(ticks > 0, ticks, fallback)


def _range_expansion_table(chroma: bool) -> np.ndarray:
    """uint8 [256]: limited-range 8-bit sample -> full range, exactly as swscale converts it
    (15-bit intermediate, FFmpeg's integer coefficients, output rounding +64 >> 7)."""
    wide = np.arange(256, dtype=np.int64) << 7
    if chroma:
        wide = (np.minimum(wide, 30775) * 4663 - 9289992) >> 12
    else:
        wide = (np.minimum(wide, 30189) * 19077 - 39057361) >> 14
    return np.clip((wide + 64) >> 7, 0, 255).astype(np.uint8)


def _fix(x: float) -> int:
    return int(x * 65536 + 0.5)


_LUMA_TO_FULL = _range_expansion_table(chroma=False)
_CHROMA_TO_FULL = _range_expansion_table(chroma=True)
# libjpeg's JFIF Y'CbCr -> R'G'B' tables (BT.601, full range, 16-bit fixed point), by Cb or Cr.
_C = np.arange(256, dtype=np.int64) - 128
_CR_R = ((_fix(1.40200) * _C + 32768) >> 16).astype(np.int16)
_CB_B = ((_fix(1.77200) * _C + 32768) >> 16).astype(np.int16)
# Green takes both: int16 [256 * 256] by Cb * 256 + Cr.
_CBCR_G = (
    ((-_fix(0.34414) * _C[:, None] + 32768 - _fix(0.71414) * _C[None, :]) >> 16)
    .astype(np.int16)
    .ravel()
)


def _fancy_upsample(plane: np.ndarray, vertical: bool, size: tuple[int, int]) -> np.ndarray:
    """libjpeg's "fancy" chroma upsampling by 2 horizontally (and by 2 vertically if
    `vertical`): a triangular filter, 3/4 of the sample and 1/4 of its neighbour on the side of
    the output pixel, edges replicated, with libjpeg's rounding biases. `plane` uint8 [h, w];
    returns uint8 [H, W] for `size` = (W, H)."""
    sums = plane.astype(np.int16)
    shift, bias_even, bias_odd = 2, 1, 2
    if vertical:
        rows = np.empty((2 * sums.shape[0], sums.shape[1]), np.int16)
        upper, lower = rows[0::2], rows[1::2]
        upper[...] = lower[...] = 3 * sums
        upper[1:] += sums[:-1]
        upper[0] += sums[0]
        lower[:-1] += sums[1:]
        lower[-1] += sums[-1]
        sums, shift, bias_even, bias_odd = rows, 4, 8, 7
    out = np.empty((sums.shape[0], 2 * sums.shape[1]), np.int16)
    even, odd = out[:, 0::2], out[:, 1::2]
    even[...] = 3 * sums + bias_even
    odd[...] = 3 * sums + bias_odd
    even[:, 1:] += sums[:, :-1]
    even[:, 0] += sums[:, 0]
    odd[:, :-1] += sums[:, 1:]
    odd[:, -1] += sums[:, -1]
    np.right_shift(out, shift, out=out)
    return out[: size[1], : size[0]].astype(np.uint8)


def jpeg_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The RGB image OpenCV reads from the JPEG that ffmpeg writes for `frame`, less JPEG's
    quantization: uint8 [H, W, 3] (stored orientation). See the module's colour rule."""
    name = frame.format.name
    if name not in _PLANAR_YUV:
        frame = frame.reformat(format="yuv420p", src_color_range=frame.color_range or None)
        name = "yuv420p"
    full_range = name.startswith("yuvj") or frame.color_range == 2  # AVCOL_RANGE_JPEG
    planes = []
    for index, plane in enumerate(frame.planes[:3]):
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        samples: np.ndarray = np.ascontiguousarray(rows[:, : plane.width])
        if not full_range:
            samples = cv2.LUT(samples, _CHROMA_TO_FULL if index else _LUMA_TO_FULL)
        planes.append(samples)
    luma, cb, cr = planes
    size = (frame.width, frame.height)
    horizontal, vertical = _PLANAR_YUV[name]
    if horizontal == 2:
        cb, cr = (_fancy_upsample(c, vertical == 2, size) for c in (cb, cr))
    y = luma.astype(np.int16)
    green = _CBCR_G[(cb.astype(np.uint16) << 8) | cr]
    # cv2.add with an 8-bit result saturates to 0..255, as libjpeg's range limit does.
    channels = [cv2.add(y, offset, dtype=cv2.CV_8U) for offset in (cv2.LUT(cr, _CR_R), green)]
    return cv2.merge([*channels, cv2.add(y, cv2.LUT(cb, _CB_B), dtype=cv2.CV_8U)])


class VideoReader:
    """Random access to the frames of one video file by time.

    `frame_rule` and `color` are described in the module docstring; `layout_fps` is the frame
    rate of the extracted layout that the ffmpeg frame rule reproduces (AVA's 30). Use as a
    context manager (or call `close`). Frames are uint8 RGB arrays [H, W, 3].
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_rule: FrameRule = "ffmpeg",
        color: Color = "jpeg_bt601",
        layout_fps: float = 30.0,
    ):
        self.path = Path(path)
        if frame_rule not in FRAME_RULES:
            raise ValueError(f"frame_rule must be one of {FRAME_RULES}, got {frame_rule!r}")
        if color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {color!r}")
        if not layout_fps > 0:
            raise ValueError(f"layout_fps must be positive, got {layout_fps!r}")
        self.frame_rule, self.color, self.layout_fps = frame_rule, color, float(layout_fps)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: video file not found")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise VideoReadError(f"{self.path}: cannot open video: {e}") from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{self.path}: no video stream")
        self._stream = self._container.streams.video[0]
        # One decoding thread: loaders parallelize over clips with worker processes, and frame
        # threads only add latency and contention to the short decodes a clip needs.
        self._stream.codec_context.thread_count = 1
        if self._stream.time_base is None:
            self.close()
            raise VideoReadError(f"{self.path}: the video stream has no time base")
        self._stream_time_base: Fraction = self._stream.time_base
        self._time_base = float(self._stream_time_base)
        self._start_pts = self._stream.start_time or 0
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            self.close()
            raise VideoReadError(f"{self.path}: the video stream has no frame rate")
        self.fps = float(rate)
        if self._stream.duration:
            self.duration = float(self._stream.duration * self._stream_time_base)
        elif self._container.duration:
            self.duration = self._container.duration / av.time_base
        else:
            self.duration = self._stream.frames / self.fps
        # Length the header promises: a truncated AVI keeps its frame count while FFmpeg
        # estimates the duration from the data that is left.
        self._declared_s = max(self.duration, self._stream.frames / self.fps)
        self._rot90 = 0
        self._reformatter = VideoReformatter()
        # Where the last read_at_times stopped: (decoder iterator, its last frames). A following
        # read that starts at or after those frames continues decoding instead of seeking.
        self._resume: tuple[Iterator[av.VideoFrame], list[av.VideoFrame]] | None = None
        # Source frame time (s from the stream start) of each layout frame, under the ffmpeg
        # rule; read from the packet timestamps on first use.
        self._layout_times: np.ndarray | None = None
        width, height = self._stream.codec_context.width, self._stream.codec_context.height
        first = self._first_frame()
        if first is not None and first.rotation % 90 == 0:
            # The display matrix turns the picture counterclockwise by `rotation` degrees.
            self._rot90 = (int(first.rotation) // 90) % 4
        self.size = (height, width) if self._rot90 % 2 else (width, height)

    def _first_frame(self) -> av.VideoFrame | None:
        try:
            self._container.seek(self._start_pts, stream=self._stream, backward=True)
            return next(self._container.decode(self._stream), None)
        except av.FFmpegError as e:
            self.close()
            raise VideoReadError(f"{self.path}: cannot decode the first frame: {e}") from e

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def __repr__(self) -> str:
        return (
            f"VideoReader({str(self.path)!r}, fps={self.fps:g}, "
            f"duration={self.duration:.3f}, size={self.size})"
        )

    def num_frames_at(self, fps: float) -> int:
        """Frames a `fps` grid has over the video's duration, ``round(duration * fps)`` (cheap;
        `num_layout_frames` is the exact count an ffmpeg extraction writes)."""
        return max(1, int(round(self.duration * fps)))

    @property
    def num_layout_frames(self) -> int:
        """Frames ``ffmpeg -r layout_fps`` writes for this video (reads every packet's
        timestamp once)."""
        return len(self._layout_frame_times())

    def _layout_frame_times(self) -> np.ndarray:
        """float64 [num_layout_frames]: the source frame time (s from the stream start) of each
        layout frame under ffmpeg's rule."""
        if self._layout_times is None:
            self._layout_times = self._scan_layout()
        return self._layout_times

    def _scan_layout(self) -> np.ndarray:
        stat = self.path.stat()
        pts = _layout_source_pts(str(self.path), stat.st_size, stat.st_mtime_ns, self.layout_fps)
        return (pts - self._start_pts) * self._time_base

    def _frame_time(self, frame: av.VideoFrame) -> float:
        if frame.pts is None:
            raise VideoReadError(f"{self.path}: a decoded frame has no timestamp (pts)")
        return (frame.pts - self._start_pts) * self._time_base

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        if self.color == "jpeg_bt601":
            image = jpeg_rgb(frame)
        else:
            # One reformatter per reader keeps its swscale context (`to_ndarray(format=...)`
            # builds a new one per frame), and one thread avoids starting a thread pool per
            # frame: together 10-40x cheaper on small frames, with identical pixels.
            image = self._reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        if self._rot90:
            image = np.ascontiguousarray(np.rot90(image, self._rot90))
        return image

    def _decode_from(self, time_s: float) -> Iterator[av.VideoFrame]:
        """Frames from the key frame at or before `time_s` onwards, in presentation order.

        Some containers (AVI, files without an index) land after the wanted time; then the seek is
        retried further back until the first decoded frame is at or before `time_s` (or is the
        first frame of the video).
        """
        self._resume = None
        back_s = 0.0
        while True:
            target = max(0.0, time_s - back_s)
            pts = self._start_pts + int(math.floor(target / self._time_base))
            try:
                self._container.seek(pts, stream=self._stream, backward=True)
                frames = self._container.decode(self._stream)
                first = next(frames, None)
            except av.FFmpegError as e:
                raise VideoReadError(
                    f"{self.path}: decoding failed near {time_s:.3f} s: {e}"
                ) from e
            if first is None or self._frame_time(first) <= time_s + _TIE_EPS_S or target == 0.0:
                break
            back_s = max(1.0, 2 * back_s)
        if first is None:
            return
        yield first
        try:
            yield from frames
        except av.FFmpegError as e:
            raise VideoReadError(f"{self.path}: decoding failed after {time_s:.3f} s: {e}") from e

    def _frames_for(self, time_s: float) -> Iterator[av.VideoFrame]:
        """Frames in presentation order, starting at or before `time_s`: the previous read's
        decoder when `time_s` is at most `_RESUME_MAX_S` past where it stopped (clips of
        consecutive keyframes then decode each frame once), else a fresh seek."""
        if self._resume is not None:
            iterator, recent = self._resume
            first_time, last_time = self._frame_time(recent[0]), self._frame_time(recent[-1])
            if first_time <= time_s + _TIE_EPS_S and time_s <= last_time + _RESUME_MAX_S:
                self._resume = None
                return itertools.chain(recent, iterator)
        return self._decode_from(time_s)

    def _source_times(self, times: np.ndarray) -> np.ndarray:
        """Layout times -> the times of the source frames ffmpeg's rule puts there; times past
        the last layout frame are kept (the past-the-end rules of `read_at_times` apply)."""
        table = self._layout_frame_times()
        slots = np.rint(times * self.layout_fps).astype(np.int64)
        return np.where(slots < len(table), table[np.clip(slots, 0, len(table) - 1)], times)

    def read_at_times(self, times_s: Sequence[float] | np.ndarray) -> np.ndarray:
        """The frames at `times_s` (seconds from the start of the video, any order, repeats
        allowed) under the reader's frame rule: uint8 RGB [N, H, W, 3]."""
        times = np.asarray(times_s, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f"{self.path}: times_s must be a non-empty 1-D sequence")
        if self.frame_rule == "ffmpeg":
            times = self._source_times(times)
        order = np.argsort(times, kind="stable")
        out: list[np.ndarray | None] = [None] * times.size
        pending = 0  # next position in `order` to serve
        prev: av.VideoFrame | None = None
        prev_rgb: np.ndarray | None = None
        last_time = -math.inf
        frames = self._frames_for(float(times[order[0]]))
        for frame in frames:
            t_frame = self._frame_time(frame)
            if t_frame < last_time:
                continue  # some demuxers repeat a frame after a seek; pts only move forward
            cur_rgb: np.ndarray | None = None
            while pending < times.size and times[order[pending]] <= t_frame + _TIE_EPS_S:
                t = times[order[pending]]
                use_prev = prev is not None and (t - last_time) <= (t_frame - t) + _TIE_EPS_S
                if use_prev and prev is not None:
                    if prev_rgb is None:
                        prev_rgb = self._to_rgb(prev)
                    out[order[pending]] = prev_rgb
                else:
                    if cur_rgb is None:
                        cur_rgb = self._to_rgb(frame)
                    out[order[pending]] = cur_rgb
                pending += 1
            if pending == times.size:
                self._resume = (frames, [f for f in (prev, frame) if f is not None])
                break
            prev, prev_rgb, last_time = frame, cur_rgb, t_frame
        if pending < times.size:
            self._serve_past_end(
                times[order[pending:]], prev, prev_rgb, last_time, order[pending:], out
            )
        return np.stack(cast(list[np.ndarray], out))

    def _serve_past_end(self, times, prev, prev_rgb, last_time, positions, out) -> None:
        """Times after the last decoded frame get that frame, unless the file ends before the
        duration its header declares (a truncated or corrupt file, which must not pass silently)."""
        if prev is None:
            raise VideoReadError(
                f"{self.path}: no frame could be decoded at or after {times[0]:.3f} s"
            )
        frame_interval = 1.0 / self.fps
        wanted = float(min(times.max(), self._declared_s - frame_interval))
        if wanted > last_time + 1.5 * frame_interval:
            raise VideoReadError(
                f"{self.path}: frames end at {last_time:.3f} s but the header declares "
                f"{self._declared_s:.3f} s (truncated or corrupt file); "
                f"wanted {float(times.max()):.3f} s"
            )
        rgb = prev_rgb if prev_rgb is not None else self._to_rgb(prev)
        for position in positions:
            out[position] = rgb

    def iter_frames(
        self, start_s: float = 0.0, end_s: float | None = None
    ) -> Iterator[tuple[np.ndarray, float]]:
        """Every decoded frame with ``start_s <= time < end_s`` as
        (uint8 RGB [H, W, 3], time in s)."""
        for frame in self._decode_from(start_s):
            t_frame = self._frame_time(frame)
            if end_s is not None and t_frame >= end_s:
                return
            if t_frame + _TIE_EPS_S >= start_s:
                yield self._to_rgb(frame), t_frame


def iter_layout_frames(reader: VideoReader, chunk: int = 16) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame of `reader`'s layout in order, as (index from 0, uint8 RGB [H, W, 3]): what
    ``ffmpeg -r layout_fps`` writes, under the reader's frame and colour rules. Decodes the video
    once, front to back (consecutive reads continue the decoder)."""
    if reader.frame_rule == "ffmpeg":
        count = reader.num_layout_frames
    else:
        count = reader.num_frames_at(reader.layout_fps)
    for start in range(0, count, chunk):
        indices = np.arange(start, min(start + chunk, count))
        frames = reader.read_at_times(indices / reader.layout_fps)
        yield from zip(indices.tolist(), frames, strict=True)


def read_frame_files(paths: Sequence[str | Path]) -> np.ndarray:
    """Extracted frames (JPEG or PNG) as uint8 RGB [N, H, W, 3]; a missing or unreadable file raises
    `VideoReadError` naming it."""
    images = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            reason = "not found" if not Path(path).is_file() else "cannot be decoded"
            raise VideoReadError(f"{path}: frame file {reason}")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return np.stack(images)
