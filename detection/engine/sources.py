"""Where the streaming engine's frames come from: a video file (any length and container PyAV
opens), a directory or list of videos, or a live source through PyAV/FFmpeg (a webcam
``/dev/videoN``, an ``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``rtp://``, ``srt://``
or ``tcp://`` URL, ``-`` for a pipe on stdin).

Every source decodes each frame once, front to back, and yields it as (uint8 RGB [H, W, 3], time
in s). A file source's times are from the start of its video stream (the `VideoReader` clock);
a live source's are from its first frame. A file also gives `layout_times`: which source frame
(by time) each frame of the 30 fps layout is under ffmpeg's ``-r`` rule (see
`detection.data.video`), so clips match those of an extracted-frame dataset; live sources place
frames on the layout grid by nearest time instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from detection.data.video import VIDEO_EXTENSIONS, VideoReader, VideoReadError
from detection.errors import UserError, shorten

LIVE_PREFIXES = (
    "rtsp://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "rtp://",
    "srt://",
    "tcp://",
)
# A live source that delivers nothing for this long has ended (UDP has no end-of-stream).
DEFAULT_LIVE_TIMEOUT_S = 5.0
DEFAULT_OPEN_TIMEOUT_S = 30.0


class SourceError(UserError, ValueError):
    """A source that names no video: an empty directory, an unknown URL scheme, a list file
    naming a missing video; the message names it."""


def is_live(spec: str) -> bool:
    """True for a URL PyAV streams, a V4L2 device (``/dev/videoN``) or ``-`` (stdin)."""
    return spec == "-" or spec.startswith(LIVE_PREFIXES) or spec.startswith("/dev/video")


def expand_sources(specs: Sequence[str]) -> list[str]:
    """The inputs of one command: each spec is a video, a live source, a directory (its videos
    of `VIDEO_EXTENSIONS`, sorted by name, not recursive) or a ``.txt`` list (one video or live
    source a line, relative to the list's folder; blank lines and ``#`` comments skipped)."""
    out: list[str] = []
    for spec in specs:
        if is_live(spec):
            out.append(spec)
            continue
        path = Path(spec)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            if not videos:
                raise SourceError(f"{path}: no videos ({', '.join(VIDEO_EXTENSIONS)}) in folder")
            out += [str(p) for p in videos]
        elif path.suffix.lower() == ".txt" and path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                if is_live(entry):
                    out.append(entry)
                    continue
                video = Path(entry) if Path(entry).is_absolute() else path.parent / entry
                if not video.is_file():
                    raise SourceError(f"{path}:{number}: video {shorten(entry)} not found")
                out.append(str(video))
        else:
            out.append(spec)
    return out


class FileSource:
    """A video file through `VideoReader` (ffmpeg's frame rule, JPEG colours).

    `fps` and `duration` (s) are the stream's; `layout_times()` is float64 [L]: the source
    frame time of each 30 fps layout frame (a demux-only scan of the packet timestamps)."""

    live = False

    def __init__(self, path: str | Path, *, layout_fps: float = 30.0) -> None:
        self.reader = VideoReader(path, layout_fps=layout_fps)
        self.name = str(self.reader.path)
        self.stem = self.reader.path.stem
        self.fps = self.reader.fps
        self.duration: float | None = self.reader.duration
        self.frames_decoded = 0

    def layout_times(self) -> np.ndarray | None:
        # The reader's table of ffmpeg's choices; `VideoReader` keeps it per process.
        return self.reader.layout_frame_times()

    def frames(self, start_s: float, end_s: float | None) -> Iterator[tuple[np.ndarray, float]]:
        """Each decoded frame with ``start_s <= time < end_s``, once, in order."""
        for frame, t in self.reader.iter_frames(start_s, end_s):
            self.frames_decoded += 1
            yield frame, t

    def close(self) -> None:
        self.reader.close()


class LiveSource:
    """A live stream through PyAV: frames as they arrive, no seeking, times from the first
    frame's timestamp (frame count / fps when the stream has none).

    `timeout_s`: the stream has ended when nothing arrives for this long; `open_timeout_s`: time
    allowed to connect and see the stream's first packets. `options`: FFmpeg demuxer/protocol
    options (e.g. ``{"rtsp_transport": "tcp"}``).
    """

    live = True

    def __init__(
        self,
        spec: str,
        *,
        timeout_s: float = DEFAULT_LIVE_TIMEOUT_S,
        open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S,
        options: dict[str, str] | None = None,
    ) -> None:
        self.name = spec
        self.stem = live_stem(spec)
        opts = dict(options or {})
        fmt = None
        target: object = spec
        timeout: tuple[float, float] | None = (open_timeout_s, timeout_s)
        if spec == "-":
            target = sys.stdin.buffer
        elif spec.startswith("/dev/video"):
            fmt = "video4linux2"
        elif spec.startswith("udp://"):
            # The udp protocol's own timeout (microseconds without a packet, connecting
            # included) ends the stream; PyAV's interrupt timer would also cut the probing.
            opts.setdefault("timeout", str(int(timeout_s * 1e6)))
            # A bigger socket buffer than FFmpeg's 64 KiB rides out a busy decoder.
            opts.setdefault("fifo_size", "0")
            opts.setdefault("overrun_nonfatal", "1")
            timeout = None
        try:
            self._container = av.open(target, mode="r", format=fmt, options=opts, timeout=timeout)
        except (av.error.ExitError, av.error.OSError) as e:
            raise VideoReadError(
                f"{spec}: no video arrived in time (is the sender running?): {e}"
            ) from e
        except (av.FFmpegError, OSError) as e:
            raise VideoReadError(f"{spec}: cannot open live source: {e}") from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{spec}: no video stream")
        self._stream = self._container.streams.video[0]
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        self.fps = float(rate) if rate else 30.0
        self.duration = None
        self.frames_decoded = 0

    def layout_times(self) -> np.ndarray | None:
        return None

    def frames(self, start_s: float, end_s: float | None) -> Iterator[tuple[np.ndarray, float]]:
        """Frames with ``start_s <= time < end_s`` as they arrive; ends with the stream, on
        `end_s`, or after `timeout_s` without data."""
        first_pts: int | None = None
        time_base = float(self._stream.time_base) if self._stream.time_base else 0.0
        count = 0

        def timed(frame: av.VideoFrame) -> float:
            nonlocal first_pts, count
            if frame.pts is not None and time_base and first_pts is None:
                first_pts = frame.pts
            if frame.pts is not None and first_pts is not None:
                t = (frame.pts - first_pts) * time_base
            else:
                t = count / self.fps
            count += 1
            self.frames_decoded += 1
            return t

        decoded = self._container.decode(self._stream)
        while True:
            try:
                batch = [next(decoded)]
                ended = False
            except StopIteration:
                return
            except av.FFmpegError as e:
                # A live stream has no end marker: the read timeout, or a stream cut
                # mid-packet, ends the run with what was decoded, including the frames the
                # decoder still holds (an HTTP stream closed by its server ends this way).
                if count == 0:
                    raise VideoReadError(f"{self.name}: no frame could be decoded: {e}") from e
                batch, ended = self._flush(), True
            for frame in batch:
                t = timed(frame)
                if end_s is not None and t >= end_s:
                    return
                if t >= start_s:
                    yield frame.to_ndarray(format="rgb24"), t
            if ended:
                return

    def _flush(self) -> list[av.VideoFrame]:
        try:
            return list(self._stream.codec_context.decode(None))
        except av.FFmpegError:
            return []

    def close(self) -> None:
        self._container.close()


def live_stem(spec: str) -> str:
    """A file-name-safe name for a live source (its address; "stdin" for -)."""
    if spec == "-":
        return "stdin"
    tail = spec.split("://", 1)[-1].rstrip("/")
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in tail)
    return stem[:60] or "live"


def open_source(
    spec: str | Path, *, timeout_s: float = DEFAULT_LIVE_TIMEOUT_S
) -> FileSource | LiveSource:
    """The right source for `spec` (see `is_live`)."""
    text = str(spec)
    if is_live(text):
        return LiveSource(text, timeout_s=timeout_s)
    return FileSource(text)
