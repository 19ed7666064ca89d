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
with "fancy" (triangular) chroma upsampling. `jpeg_rgb` reproduces both steps exactly (libjpeg's
integer arithmetic, compiled by Numba: `detection.data.jpeg_colour`), so a
BT.709 HD video gives the same, BT.601-interpreted, colours as its JPEGs (exact for 8-bit planar
4:2:0, 4:2:2 and 4:4:4 video; other pixel formats are first converted to 4:2:0). ``color="stream"``
converts with the stream's own colour tags through swscale instead (BT.709 for tagged HD), for
models trained that way.

Time rule of `read_at_times`: time ``t`` is layout frame ``round(t * layout_fps)`` under the
ffmpeg rule (times are meant to lie on the layout grid); under the nearest rule any time works,
variable frame rates included. Times before the first frame give the first frame; times after
the end of the video give the last frame.

Seeking: a read seeks once to the key frame at or before the earliest wanted frame and decodes
forward only until every wanted frame is served; it never loads a whole video. In the run-up
to the first wanted frame, frames that no other frame references (most B-frames) are skipped
when the frame times are known (the ffmpeg rule's packet scan); under the ffmpeg rule, so are
those between the wanted frames of a read that keeps no window or knows the next read's times
(`read_at_times`). Sliding window (`VideoReader`'s ``keep_frames``): the frames of the last
read stay decoded and converted, and a read that starts inside them (and, under the ffmpeg
rule, finds every frame it wants there), or ahead with no key frame in between, continues the
decoder instead of seeking, so the overlapping clips of consecutive keyframes decode and
convert each frame once. Which path served a read never changes its frames.

Rotation: when the stream carries a display matrix with a multiple of 90 degrees (phone videos),
frames are rotated to display orientation (as ffmpeg does) and `size` reports the displayed
(W, H).
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import itertools
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from detection.errors import UserError

from . import jpeg_colour
from .jpeg_colour import ycbcr_to_jpeg_rgb

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi")

# A forked child must never free a decoder it inherited: freeing a codec context that decoded
# with FFmpeg's frame threads waits on condition variables whose threads exist only in the
# parent (a DataLoader worker hung in avcodec_free_context -> pthread_cond_destroy when its
# garbage collector freed a closed reader's container, still in PyAV's reference cycle). So the
# objects a child inherits are moved out of the collector's reach before it runs any code.
os.register_at_fork(after_in_child=gc.freeze)
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
def _scan_packets(
    path: str, size: int, mtime_ns: int, layout_fps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From the packet timestamps of the video at `path` (`size` and `mtime_ns` key the cache to
    the file's version): int64 [num_layout_frames], pts of the source frame of each layout frame
    under ffmpeg's rule; int64 [N], every frame's pts, sorted; int64 [K], the key frames' pts,
    sorted (where a seek lands)."""
    packets: list[tuple[int, int]] = []
    keyframes: list[int] = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                pts = packet.pts if packet.pts is not None else packet.dts
                if packet.size and pts is not None and not packet.is_discard:
                    packets.append((pts, packet.duration or 0))
                    if packet.is_keyframe:
                        keyframes.append(pts)
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
    return source[chosen, 0], source[:, 0], np.sort(np.asarray(keyframes, dtype=np.int64))


def _has_time(sorted_times: np.ndarray, time_s: float) -> bool:
    """Whether `time_s` is one of `sorted_times` (float64 [N], s), up to float rounding."""
    k = int(np.searchsorted(sorted_times, time_s))
    return any(
        abs(float(sorted_times[i]) - time_s) <= _TIE_EPS_S
        for i in (k - 1, k)
        if 0 <= i < len(sorted_times)
    )


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


def prepare_color(color: Color) -> None:
    """Load now what converting frames to `color` needs (the JPEG colours' compiled kernel,
    ~0.5-0.9 s) rather than at the first frame: a process about to fork DataLoader workers
    calls it, so that they inherit it instead of each loading it again, every epoch."""
    if color == "jpeg_bt601":
        jpeg_colour.prepare()


def jpeg_rgb(frame: av.VideoFrame, out: np.ndarray | None = None) -> np.ndarray:
    """The RGB image OpenCV reads from the JPEG that ffmpeg writes for `frame`, less JPEG's
    quantization: uint8 [H, W, 3] (stored orientation), written into `out` (contiguous uint8
    [H, W, 3]) when given, else a new array. See the module's colour rule
    (`detection.data.jpeg_colour`). Safe to call from several threads at once."""
    name = frame.format.name
    if name not in _PLANAR_YUV:
        frame = frame.reformat(format="yuv420p", src_color_range=frame.color_range or None)
        name = "yuv420p"
    full_range = name.startswith("yuvj") or frame.color_range == 2  # AVCOL_RANGE_JPEG
    y, cb, cr = (
        np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
        for plane in frame.planes[:3]
    )
    return ycbcr_to_jpeg_rgb(
        (y, cb, cr), (frame.width, frame.height), _PLANAR_YUV[name], full_range, out
    )


class _Clip:
    """The frames of one read, written into place as they are served: uint8 [N, H, W, 3], into
    `out` when given (checked against the first frame's shape), else a new array."""

    def __init__(self, path: Path, count: int, out: np.ndarray | None) -> None:
        self.path, self.count, self.out = path, count, out
        self.frames: np.ndarray | None = None

    def put(self, position: int, image: np.ndarray) -> None:
        if self.frames is None:
            shape = (self.count, *image.shape)
            if self.out is None:
                self.frames = np.empty(shape, np.uint8)
            elif self.out.shape != shape or self.out.dtype != np.uint8:
                raise ValueError(
                    f"{self.path}: out must be uint8 {shape}, got {self.out.dtype} {self.out.shape}"
                )
            else:
                self.frames = self.out
        self.frames[position] = image

    def array(self) -> np.ndarray:
        assert self.frames is not None
        return self.frames


class _Decoded:
    """One decoded frame: its time (s from the stream start) and, once converted, its RGB image
    (the decoded frame is then dropped)."""

    __slots__ = ("frame", "time", "rgb")

    def __init__(self, frame: av.VideoFrame, time: float) -> None:
        self.frame: av.VideoFrame | None = frame
        self.time = time
        self.rgb: np.ndarray | None = None


class VideoReader:
    """Random access to the frames of one video file by time.

    `frame_rule` and `color` are described in the module docstring; `layout_fps` is the frame
    rate of the extracted layout that the ffmpeg frame rule reproduces (AVA's 30). Use as a
    context manager (or call `close`). Frames are uint8 RGB arrays [H, W, 3].

    Sliding window (`keep_frames`, default True): the frames a `read_at_times` decoded from its
    earliest wanted frame on stay decoded (those it returned, converted), and the decoder stays
    where it stopped; a following read whose earliest frame is in that window is served from it
    and continues decoding forward, so clips of consecutive keyframes, which overlap, decode
    and convert each frame once. Memory: about one clip span of frames (e.g. 64 at 30 fps for
    AVA's 32x2 clips). ``keep_frames=False`` keeps only the last two frames (for random access,
    e.g. training, where the window is rarely reused). The frames returned are the same either
    way.

    `threads`: decoding threads (FFmpeg's frame and slice threads when more than 1; a loader
    gives each worker process its share of the cores). The frames are the same for any count.

    `convert_in_thread`: `read_at_times` converts the frames it returns to RGB on the process's
    colour thread (`_colour_thread`) while this thread goes on decoding, and waits for them
    before it returns: for a process with a core to spare (a loader without workers), where the
    conversion otherwise runs after each frame's decoding on one core. The frames are the same.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_rule: FrameRule = "ffmpeg",
        color: Color = "jpeg_bt601",
        layout_fps: float = 30.0,
        keep_frames: bool = True,
        threads: int = 1,
        convert_in_thread: bool = False,
    ):
        self.path = Path(path)
        if frame_rule not in FRAME_RULES:
            raise ValueError(f"frame_rule must be one of {FRAME_RULES}, got {frame_rule!r}")
        if color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {color!r}")
        if not layout_fps > 0:
            raise ValueError(f"layout_fps must be positive, got {layout_fps!r}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self.frame_rule, self.color, self.layout_fps = frame_rule, color, float(layout_fps)
        self.keep_frames = keep_frames
        self.convert_in_thread = convert_in_thread
        # Frames decoded so far by read_at_times and iter_frames (seeks' run-ups included).
        self.frames_decoded = 0
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
        # Set before the first decode opens the codec. FFmpeg's threads decode the next frames
        # while this thread converts colours: on 2 cores, a 720p pass that converts every other
        # frame took 7-8 ms per frame instead of 16; with every core already busy (loader
        # workers), more threads only contend.
        if threads > 1:
            self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
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
        # The sliding window: consecutive decoded frames (presentation order) and the decoder
        # that continues right after the last of them; None after a failure or an iter_frames.
        self._window: list[_Decoded] = []
        self._decoder: Iterator[av.VideoFrame] | None = None
        # Which packets skip non-reference frames (`_skips`): those before `_skip_below` (s, a
        # seek's run-up) and, during a read that skips, those of frames not in `_wanted`
        # (sorted frame times, s) before `_skip_until` (s).
        self._skip_below = -math.inf
        self._wanted: np.ndarray | None = None
        self._skip_until = -math.inf
        # Source frame time (s from the stream start) of each layout frame under the ffmpeg
        # rule, and the key frame times; read from the packet timestamps on first use.
        self._layout_times: np.ndarray | None = None
        self._keyframe_times: np.ndarray | None = None
        self._frame_times: np.ndarray | None = None
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
        self._window, self._decoder = [], None
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
        return len(self.layout_frame_times())

    def layout_frame_times(self) -> np.ndarray:
        """float64 [num_layout_frames]: for each frame of the ``ffmpeg -r layout_fps`` layout,
        the presentation time (seconds from the video stream's start, the clock of
        `read_at_times` and `iter_frames`) of the source frame that ffmpeg's rule puts there.
        Reads every packet's timestamp on first use (demuxing only; cached per process)."""
        if self._layout_times is None:
            stat = self.path.stat()
            layout_pts, frame_pts, keyframe_pts = _scan_packets(
                str(self.path), stat.st_size, stat.st_mtime_ns, self.layout_fps
            )
            self._layout_times = (layout_pts - self._start_pts) * self._time_base
            self._frame_times = (frame_pts - self._start_pts) * self._time_base
            self._keyframe_times = (keyframe_pts - self._start_pts) * self._time_base
        return self._layout_times

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

    def _rgb(self, entry: _Decoded) -> np.ndarray:
        """`entry`'s image, converted once (on one thread at a time: the caller's, or the colour
        thread while a read waits for it)."""
        if entry.rgb is None:
            assert entry.frame is not None
            entry.rgb, entry.frame = self._to_rgb(entry.frame), None
        return entry.rgb

    def _decode_from(self, time_s: float) -> Iterator[av.VideoFrame]:
        """Frames from the key frame at or before `time_s` onwards, in presentation order.

        Some containers (AVI, files without an index) land after the wanted time; then the seek is
        retried further back until the first decoded frame is at or before `time_s` (or is the
        first frame of the video). Callers drop the window: the seek moves its demuxer.

        Run-up: when the frame times are known (after `layout_frame_times`), packets of frames
        before the last frame preceding `time_s` are decoded with ``skip_frame=NONREF``: frames
        that no other frame references are not reconstructed (about 40% of the run-up's cost
        for H.264 with B-frames), the others are, so every frame from there on is the same.
        """
        back_s = 0.0
        self._skip_below = -math.inf
        if self._frame_times is not None:
            before = np.searchsorted(self._frame_times, time_s - _TIE_EPS_S, side="left") - 1
            if before >= 0:
                self._skip_below = float(self._frame_times[before]) - _TIE_EPS_S
        while True:
            target = max(0.0, time_s - back_s)
            pts = self._start_pts + int(math.floor(target / self._time_base))
            try:
                self._container.seek(pts, stream=self._stream, backward=True)
                frames = self._decode_packets()
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
        self.frames_decoded += 1
        yield first
        try:
            for frame in frames:
                self.frames_decoded += 1
                yield frame
        except av.FFmpegError as e:
            raise VideoReadError(f"{self.path}: decoding failed after {time_s:.3f} s: {e}") from e

    def _decode_packets(self) -> Iterator[av.VideoFrame]:
        """Decode from the demuxer's position; packets for which `_skips` holds skip
        non-reference frames."""
        context = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            skip = packet.pts is not None and self._skips(
                (packet.pts - self._start_pts) * self._time_base
            )
            context.skip_frame = "NONREF" if skip else "DEFAULT"
            yield from context.decode(packet)

    def _skips(self, time_s: float) -> bool:
        """Whether the frame at `time_s` need not be output, so that its packet may skip a
        non-reference frame: it is in a seek's run-up (`_decode_from`), or the current read
        skips (`read_at_times`) and the frame is not among `_wanted` (its frames and the next
        read's) and comes before the read's last frame (`_skip_until`; later frames stay
        decoded for the next read). `_continues` seeks for a read that wants a skipped frame."""
        if time_s < self._skip_below:
            return True
        wanted = self._wanted
        if wanted is None or time_s >= self._skip_until - _TIE_EPS_S:
            return False
        return not _has_time(wanted, time_s)

    def _continues(self, times: np.ndarray) -> bool:
        """Whether a read of the sorted `times` continues the window's decoder rather than
        seeking: its earliest time is in the window, or ahead of it with no key frame in
        between (a seek would land at or before where the decoder is; without the key frame
        table, up to `_RESUME_MAX_S` ahead). Under the ffmpeg rule, every wanted time inside
        the window must be one of its frames (the last read may have skipped others)."""
        if not self._window or self._decoder is None:
            return False
        time_s = float(times[0])
        start, end = self._window[0].time, self._window[-1].time
        if time_s + _TIE_EPS_S < start:
            return False
        if time_s <= end + _TIE_EPS_S:
            if self.frame_rule != "ffmpeg":
                return True
            kept = np.array([entry.time for entry in self._window])
            inside = times[times <= end + _TIE_EPS_S]
            return all(_has_time(kept, float(t)) for t in inside)
        if self._keyframe_times is None:
            return time_s <= end + _RESUME_MAX_S
        landing = np.searchsorted(self._keyframe_times, time_s + _TIE_EPS_S, side="right") - 1
        return bool(landing < 0 or self._keyframe_times[landing] <= end + _TIE_EPS_S)

    def _entries_from(self, times: np.ndarray) -> Iterator[_Decoded]:
        """Decoded frames in presentation order from at or before the first of the sorted
        `times`: the window, then its decoder (see `_continues`), or a fresh seek."""
        if self._continues(times) and self._decoder is not None:
            kept, decoder = self._window, self._decoder
        else:
            kept, decoder = [], self._decode_from(float(times[0]))
            self._window, self._decoder = [], decoder
        fresh = (_Decoded(frame, self._frame_time(frame)) for frame in decoder)
        return itertools.chain(kept, fresh)

    def _source_times(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Layout times -> the times of the source frames ffmpeg's rule puts there, and bool
        [N] whether each is a frame's time: times past the last layout frame are kept (the
        past-the-end rules of `read_at_times` apply)."""
        table = self.layout_frame_times()
        slots = np.rint(times * self.layout_fps).astype(np.int64)
        exact = slots < len(table)
        return np.where(exact, table[np.clip(slots, 0, len(table) - 1)], times), exact

    def read_at_times(
        self,
        times_s: Sequence[float] | np.ndarray,
        out: np.ndarray | None = None,
        *,
        next_times_s: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """The frames at `times_s` (seconds from the start of the video, any order, repeats
        allowed) under the reader's frame rule: uint8 RGB [N, H, W, 3].

        `out`: uint8 [N, H, W, 3] to write the frames into and return, e.g. one buffer reused
        for every clip of a loader (a new clip-sized array page-faults in on every call: tens of
        MB at 720p); a new array when None.

        Skipping (ffmpeg frame rule): a read decodes the frames between its wanted ones only as
        far as other frames reference them (most B-frames are not reconstructed: for a stride-2
        clip of H.264 with B-frames about a quarter of its decoding) when it keeps no window
        (``keep_frames=False``) or when `next_times_s`, the times the next read will want (e.g.
        the next keyframe's clip), says which frames to keep for it; otherwise, and under the
        nearest rule, only a seek's run-up skips. A later read that wants a skipped frame seeks.
        The frames returned are the same either way."""
        times = np.asarray(times_s, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f"{self.path}: times_s must be a non-empty 1-D sequence")
        self._wanted = None
        if self.frame_rule == "ffmpeg":
            times, exact = self._source_times(times)
            if exact.any() and (next_times_s is not None or not self.keep_frames):
                spared = times[exact]
                if next_times_s is not None:
                    then, then_exact = self._source_times(np.asarray(next_times_s, np.float64))
                    spared = np.concatenate([spared, then[then_exact]])
                self._wanted, self._skip_until = np.unique(spared), float(times[exact].max())
        order = np.argsort(times, kind="stable")
        clip = _Clip(self.path, times.size, out)
        colour = _colour_thread() if self.convert_in_thread else None
        converting: list[concurrent.futures.Future] = []

        def put(position: int, entry: _Decoded) -> None:
            clip.put(position, self._rgb(entry))

        pending = 0  # next position in `order` to serve
        # Frames of this read, in order, from the one before the first that serves a time (the
        # run-up from a key frame is not kept).
        seen: list[_Decoded] = []
        prev: _Decoded | None = None
        last_time = -math.inf
        try:
            for entry in self._entries_from(times[order]):
                t_frame = entry.time
                if t_frame < last_time:
                    continue  # some demuxers repeat a frame after a seek; pts only move forward
                seen.append(entry)
                if pending == 0 and len(seen) > 2:
                    del seen[0]
                while pending < times.size and times[order[pending]] <= t_frame + _TIE_EPS_S:
                    t = times[order[pending]]
                    use_prev = prev is not None and (t - last_time) <= (t_frame - t) + _TIE_EPS_S
                    chosen = prev if use_prev and prev is not None else entry
                    if colour is None:
                        put(order[pending], chosen)
                    else:
                        converting.append(colour.submit(put, order[pending], chosen))
                    pending += 1
                if pending == times.size:
                    break
                prev, last_time = entry, t_frame
            for task in converting:
                task.result()  # raises a conversion's error
        except BaseException:
            self._window, self._decoder = [], None
            raise
        finally:
            # Nothing may write into `out` after this read returns, nor touch the window's
            # frames while the next read decodes.
            concurrent.futures.wait(converting)
        self._window = seen if self.keep_frames else seen[-2:]
        if pending < times.size:
            self._serve_past_end(times[order[pending:]], prev, last_time, order[pending:], clip)
        return clip.array()

    def _serve_past_end(self, times, prev, last_time, positions, clip: _Clip) -> None:
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
        rgb = self._rgb(prev)
        for position in positions:
            clip.put(position, rgb)

    def iter_frames(
        self, start_s: float = 0.0, end_s: float | None = None
    ) -> Iterator[tuple[np.ndarray, float]]:
        """Every decoded frame with ``start_s <= time < end_s`` as
        (uint8 RGB [H, W, 3], time in s)."""
        self._window, self._decoder, self._wanted = [], None, None
        for frame in self._decode_from(start_s):
            t_frame = self._frame_time(frame)
            if end_s is not None and t_frame >= end_s:
                return
            if t_frame + _TIE_EPS_S >= start_s:
                yield self._to_rgb(frame), t_frame


@functools.cache
def _colour_thread_of(pid: int) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="colour")


def _colour_thread() -> concurrent.futures.ThreadPoolExecutor:
    """This process's one colour thread (`VideoReader(convert_in_thread=True)`). One thread,
    so that the conversions of a read run one after another (`_rgb` converts each frame once);
    per process id, since a forked child inherits the executor but not its thread."""
    return _colour_thread_of(os.getpid())


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
