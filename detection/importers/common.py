"""What the three readers hand to the keyframe sampler: people's boxes over time, the videos
they belong to, and a record of everything that was read, skipped or malformed.

Coordinates: a `Sample` box is (x1, y1, x2, y2) with (x1, y1) the top-left corner, either in
the pixels of the annotated frame size (`Track.frame_size`, x right and y down) or normalized to
[0, 1] (`Track.units`). Times are seconds from the start of the video file.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from detection.data.video import VIDEO_EXTENSIONS, VideoReader
from detection.errors import UserError

BoxUnits = Literal["pixels", "normalized"]

_EXAMPLES_PER_REASON = 3


class ImportAnnotationError(UserError, ValueError):
    """An annotation file cannot be imported; the message names the file and the element (XML
    track and frame, JSON metadata id, CSV line) and what was expected."""


@dataclass(frozen=True)
class VideoInfo:
    """A video file the annotations refer to: its id (the file name without extension, the AVA
    video id), frame rate, duration in seconds and frame size (width, height) in pixels."""

    video_id: str
    path: Path
    fps: float
    duration_s: float
    width: int
    height: int


class VideoCatalog:
    """The videos of `--videos DIR`, found by the names annotation files use for them (a file
    name, a path or URL ending in one, or a name without extension) and read once with PyAV."""

    def __init__(self, video_dir: str | Path):
        self.video_dir = Path(video_dir)
        if not self.video_dir.is_dir():
            raise ImportAnnotationError(f"--videos {self.video_dir}: not a directory")
        self._by_stem: dict[str, Path] = {}
        for path in sorted(self.video_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
                self._by_stem.setdefault(path.stem, path)
        self._info: dict[str, VideoInfo] = {}

    def find(self, name: str) -> VideoInfo | None:
        """The video `name` refers to, or None when `--videos` has no such file."""
        base = name.replace("\\", "/").split("?")[0].rsplit("/", 1)[-1]
        stem = base if base in self._by_stem else Path(base).stem
        path = self._by_stem.get(stem)
        if path is None:
            return None
        if "," in stem or not stem.strip():
            raise ImportAnnotationError(
                f"{path}: the video id {stem!r} (the file name without extension) cannot be "
                "written in AVA's comma-separated files; rename the file"
            )
        if stem not in self._info:
            with VideoReader(path) as reader:
                width, height = reader.size
                self._info[stem] = VideoInfo(
                    stem, path, reader.fps, reader.duration, int(width), int(height)
                )
        return self._info[stem]

    def require(self, name: str, where: str) -> VideoInfo:
        """`find`, or an `ImportAnnotationError` naming `where` the name was read."""
        info = self.find(name)
        if info is None:
            raise ImportAnnotationError(
                f"{where}: no video for {name!r} in {self.video_dir} "
                f"(looked for a file named {Path(name).stem}{{{','.join(VIDEO_EXTENSIONS)}}})"
            )
        return info

    @property
    def used(self) -> list[VideoInfo]:
        """The videos found so far, sorted by id."""
        return [self._info[k] for k in sorted(self._info)]


@dataclass(frozen=True)
class Sample:
    """One box of one person, annotated at one time (`start_s == end_s`) or held over a
    temporal segment [start_s, end_s]; `where` names the element it came from."""

    start_s: float
    end_s: float
    box: tuple[float, float, float, float]
    actions: tuple[str, ...]
    where: str

    def distance_s(self, time_s: float) -> float:
        """Seconds from `time_s` to the nearest time this sample covers (0 inside)."""
        if time_s < self.start_s:
            return self.start_s - time_s
        return max(0.0, time_s - self.end_s)


@dataclass
class Track:
    """The boxes of one person in one video (`person_id`), or, when the file does not say who
    is who (`person_id` None), every box of the video.

    `samples_near(t, tolerance)` gives the samples at the annotated time nearest `t` (at most
    `tolerance` away; the earlier on a tie): one for a person, all boxes of that time for an
    anonymous track.
    """

    video: VideoInfo
    person_id: int | None
    where: str
    units: BoxUnits
    frame_size: tuple[int, int]  # (width, height) the pixel boxes refer to
    samples: list[Sample] = field(default_factory=list)

    def samples_near(self, time_s: float, tolerance_s: float) -> list[Sample]:
        if not self.samples:
            return []
        if len(self._starts) != len(self.samples):
            self.samples.sort(key=lambda s: (s.start_s, s.end_s))
            self._starts = [s.start_s for s in self.samples]
            self._longest_s = max(s.end_s - s.start_s for s in self.samples)
        # Only samples starting within tolerance (plus the longest segment) can be near.
        low = bisect.bisect_left(self._starts, time_s - tolerance_s - self._longest_s)
        high = bisect.bisect_right(self._starts, time_s + tolerance_s)
        candidates = self.samples[low:high]
        if not candidates:
            return []
        best = min(s.distance_s(time_s) for s in candidates)
        if best > tolerance_s:
            return []
        nearest = [s for s in candidates if s.distance_s(time_s) == best]
        # Equally near before and after: the earlier time wins.
        first_start = min(s.start_s for s in nearest)
        return [s for s in nearest if s.start_s == first_start or best == 0]

    _starts: list[float] = field(default_factory=list, init=False, repr=False)
    _longest_s: float = field(default=0.0, init=False, repr=False)


class ImportReport:
    """Counts of what was read, written and skipped (with why), and the malformed elements.

    With `strict`, the first malformed element raises `ImportAnnotationError` instead of being
    skipped and listed."""

    def __init__(self, *, strict: bool = False):
        self.strict = strict
        self.counts: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.skip_examples: dict[str, list[str]] = {}
        self.malformed: list[str] = []

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] += n

    def skip(self, reason: str, where: str, n: int = 1) -> None:
        """`n` annotations at `where` are left out, for `reason` (a valid but unusable element:
        not a rectangle, not a person, not near any keyframe, ...)."""
        self.skipped[reason] += n
        examples = self.skip_examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(where)

    def bad(self, where: str, message: str) -> None:
        """A malformed element at `where`: raised with `strict`, else skipped and listed."""
        text = f"{where}: {message}"
        if self.strict:
            raise ImportAnnotationError(text)
        self.malformed.append(text)

    def lines(self, max_malformed: int = 20) -> list[str]:
        """The summary printed at the end of an import."""
        out = [f"  {what}: {n}" for what, n in self.counts.items()]
        if self.skipped:
            out.append("skipped:")
            for reason, n in self.skipped.most_common():
                examples = "; ".join(self.skip_examples.get(reason, []))
                out.append(f"  {n} {reason} (e.g. {examples})")
        else:
            out.append("skipped: nothing")
        if self.malformed:
            out.append(f"malformed (skipped): {len(self.malformed)}")
            out.extend(f"  {m}" for m in self.malformed[:max_malformed])
            if len(self.malformed) > max_malformed:
                out.append(f"  ... and {len(self.malformed) - max_malformed} more")
        else:
            out.append("malformed: none")
        return out


def parse_person_id(text: str) -> int | None:
    """A person id written as a non-negative integer ("3", "3.0"), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)
