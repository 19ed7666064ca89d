"""Per-person action segments from keyframe scores: who did what, from when to when.

`ActionSegmenter` takes, for every keyframe in time order, the track ids of the persons and
their action scores, and merges consecutive keyframes of one track and one action into
segments with hysteresis: a segment starts at a keyframe whose score is >= `on_threshold` and
continues while the score stays >= `off_threshold` (< `on_threshold`), so a score wavering
around one threshold does not chop an action into pieces. A keyframe stands for the half period
on either side of it, so a segment spans [first keyframe - period / 2, last keyframe +
period / 2], clipped to the video ([0, duration] when the duration is given). A track missing
from a keyframe (not detected) ends its open segments at its last keyframe.

Optional smoothing: a centred moving average of `smoothing` keyframes (odd; 0 or 1 is off)
along each track before thresholding (`smooth_track_scores` gives the same smoothed scores
offline). It delays results by `smoothing // 2` keyframes, which `finish` flushes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from detection.ava.labelmap import LabelMap
from detection.utils.atomic import atomic_write

SEGMENT_CSV_HEADER = (
    "track_id",
    "action_id",
    "action",
    "start_s",
    "end_s",
    "mean_score",
    "max_score",
)


@dataclass(frozen=True)
class ActionSegment:
    """One person (track) doing one action over [start_s, end_s] seconds of video time.

    mean_score and max_score summarise the (smoothed, if smoothing is on) keyframe scores
    inside the segment.
    """

    track_id: int
    action_id: int
    action_name: str
    start_s: float
    end_s: float
    mean_score: float
    max_score: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class _Open:
    first_s: float
    last_s: float
    scores: list[float] = field(default_factory=list)


class _MovingAverage:
    """Centred moving average over one track's consecutive keyframes (window 2 * half + 1,
    shrunk at the ends of the run). `push` returns the keyframes whose window is complete."""

    def __init__(self, half: int) -> None:
        self.half = half
        self.items: list[tuple[float, np.ndarray]] = []
        self.done = 0  # items already returned; the `half` before them stay as history

    def push(self, time_s: float, scores: np.ndarray) -> list[tuple[float, np.ndarray]]:
        self.items.append((time_s, scores))
        return self._emit(final=False)

    def flush(self) -> list[tuple[float, np.ndarray]]:
        """The remaining keyframes; the next push starts a new run."""
        out = self._emit(final=True)
        self.items, self.done = [], 0
        return out

    def _emit(self, *, final: bool) -> list[tuple[float, np.ndarray]]:
        out = []
        h = self.half
        while self.done < len(self.items) and (final or self.done + h < len(self.items)):
            lo, hi = max(0, self.done - h), self.done + h + 1
            window = np.stack([row for _, row in self.items[lo:hi]])
            out.append((self.items[self.done][0], window.mean(axis=0)))
            self.done += 1
        drop = max(0, self.done - h)
        del self.items[:drop]
        self.done -= drop
        return out


@dataclass
class _Track:
    average: _MovingAverage
    last_s: float = -math.inf
    open: dict[int, _Open] = field(default_factory=dict)  # by column of the score matrix


def _check_smoothing(smoothing: int) -> int:
    """The half window of a `smoothing` window (0 for none)."""
    if smoothing < 0 or (smoothing > 1 and smoothing % 2 == 0):
        raise ValueError(f"smoothing must be 0, 1 or an odd window >= 3, got {smoothing}")
    return smoothing // 2


class ActionSegmenter:
    """Merges keyframe action scores into `ActionSegment`s per track and action.

    Args:
        labelmap: the model's classes; column c of `action_scores` is `labelmap.ids[c]`.
        on_threshold: a segment starts at a score >= this.
        off_threshold: an open segment ends at the first keyframe scoring < this; at most
            `on_threshold`.
        keyframe_period_s: seconds between keyframes (1.0 for AVA).
        smoothing: centred moving-average window in keyframes along a track (odd, >= 3), or
            0 / 1 for none. Off by default: on generated scores (benchmarks/tracking_quality.py)
            a window of 3 raised frame-mAP only with noisy scores (0.711 -> 0.738 at score
            noise sd 0.3, 0.888 -> 0.889 at 0.15), 5 lowered it (actions of 2-8 s get blurred),
            and any window delays live results by `smoothing // 2` keyframes.
        duration_s: video length; segments are clipped to [0, duration_s] (to [0, inf) when
            None, e.g. a live stream).
    """

    def __init__(
        self,
        labelmap: LabelMap,
        *,
        on_threshold: float,
        off_threshold: float,
        keyframe_period_s: float,
        smoothing: int = 0,
        duration_s: float | None = None,
    ) -> None:
        if off_threshold > on_threshold:
            raise ValueError(
                f"off_threshold ({off_threshold}) must not exceed on_threshold ({on_threshold})"
            )
        if not keyframe_period_s > 0:
            raise ValueError(f"keyframe_period_s must be > 0, got {keyframe_period_s}")
        self.half_window = _check_smoothing(smoothing)
        self.action_ids = list(labelmap.ids)
        self.names = dict(labelmap.names)
        self.on_threshold = float(on_threshold)
        self.off_threshold = float(off_threshold)
        self.period = float(keyframe_period_s)
        self.duration_s = duration_s
        self._tracks: dict[int, _Track] = {}
        self._done: list[ActionSegment] = []
        self._last_time: float | None = None

    def update(self, time_s: float, track_ids: np.ndarray, action_scores: np.ndarray) -> None:
        """One keyframe: track_ids int64 [N] (unique), action_scores float32 [N, C]
        (C = len(labelmap)). Keyframes must come in increasing time order."""
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        scores = np.asarray(action_scores, np.float64)
        scores = scores.reshape(len(ids), -1) if len(ids) else scores.reshape(0, 0)
        if len(ids) and scores.shape[1] != len(self.action_ids):
            raise ValueError(
                f"action_scores has {scores.shape[1]} columns, the label map "
                f"{len(self.action_ids)} classes"
            )
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"track ids repeat within one keyframe: {ids.tolist()}")
        if self._last_time is not None and time_s <= self._last_time:
            raise ValueError(
                f"keyframes must come in increasing time order: {time_s} after {self._last_time}"
            )
        self._last_time = float(time_s)
        for track_id, row in zip(ids.tolist(), scores, strict=True):
            track = self._tracks.setdefault(track_id, _Track(_MovingAverage(self.half_window)))
            track.last_s = float(time_s)
            for t, smoothed in track.average.push(float(time_s), row):
                self._threshold(track_id, track, t, smoothed)
        # A track missing from this keyframe (lost, or left): its segments end where it was
        # last seen, and it is forgotten (a live stream meets unboundedly many tracks).
        for track_id in [t for t, track in self._tracks.items() if track.last_s < time_s]:
            self._end_run(track_id, self._tracks.pop(track_id))

    def finish(self) -> list[ActionSegment]:
        """Close all open segments; all segments of the run, sorted by (track, start, action
        id). Call once, at the end."""
        for track_id, track in self._tracks.items():
            self._end_run(track_id, track)
        return sorted(self._done, key=lambda s: (s.track_id, s.start_s, s.action_id))

    def _end_run(self, track_id: int, track: _Track) -> None:
        for t, smoothed in track.average.flush():
            self._threshold(track_id, track, t, smoothed)
        for column in list(track.open):
            self._close(track_id, track, column)

    def _threshold(self, track_id: int, track: _Track, time_s: float, scores: np.ndarray) -> None:
        for column, score in enumerate(scores.tolist()):
            seg = track.open.get(column)
            if seg is not None:
                if score >= self.off_threshold:
                    seg.last_s = time_s
                    seg.scores.append(score)
                    continue
                self._close(track_id, track, column)
            if score >= self.on_threshold:
                track.open[column] = _Open(time_s, time_s, [score])

    def _close(self, track_id: int, track: _Track, column: int) -> None:
        seg = track.open.pop(column)
        start = max(seg.first_s - self.period / 2, 0.0)
        end = seg.last_s + self.period / 2
        if self.duration_s is not None:
            end = min(end, self.duration_s)
        if end <= start:
            return
        action_id = self.action_ids[column]
        self._done.append(
            ActionSegment(
                track_id=track_id,
                action_id=action_id,
                action_name=self.names[action_id],
                start_s=float(start),
                end_s=float(end),
                mean_score=float(np.mean(seg.scores)),
                max_score=float(np.max(seg.scores)),
            )
        )


def smooth_track_scores(
    keyframe_times: Sequence[float],
    track_ids: Sequence[np.ndarray],
    action_scores: Sequence[np.ndarray],
    *,
    smoothing: int,
) -> list[np.ndarray]:
    """Offline: the scores `ActionSegmenter` thresholds, for every keyframe.

    Args:
        keyframe_times: K increasing times.
        track_ids: K arrays int64 [N_k].
        action_scores: K arrays float [N_k, C].
    Returns:
        K arrays float32 [N_k, C], row for row, each the centred moving average of its track's
        scores over `smoothing` keyframes, within runs of consecutive keyframes (a track
        missing from a keyframe starts a new run, as in `ActionSegmenter`).
    """
    half = _check_smoothing(smoothing)
    if not len(keyframe_times) == len(track_ids) == len(action_scores):
        raise ValueError(
            f"{len(keyframe_times)} times, {len(track_ids)} id arrays and "
            f"{len(action_scores)} score arrays"
        )
    out = [np.asarray(s, np.float32).copy() for s in action_scores]
    row_of = {
        (float(t), int(track_id)): (k, row)
        for k, (t, ids) in enumerate(zip(keyframe_times, track_ids, strict=True))
        for row, track_id in enumerate(np.asarray(ids).reshape(-1).tolist())
    }
    averages: dict[int, _MovingAverage] = {}
    last: dict[int, int] = {}  # keyframe index where each track was last seen

    def put(track_id: int, done: list[tuple[float, np.ndarray]]) -> None:
        for t, smoothed in done:
            k, row = row_of[(t, track_id)]
            out[k][row] = smoothed

    for k, (t, ids, scores) in enumerate(
        zip(keyframe_times, track_ids, action_scores, strict=True)
    ):
        for track_id, row in zip(
            np.asarray(ids).reshape(-1).tolist(), np.asarray(scores), strict=True
        ):
            average = averages.setdefault(track_id, _MovingAverage(half))
            if last.get(track_id, k - 1) != k - 1:
                put(track_id, average.flush())
            last[track_id] = k
            put(track_id, average.push(float(t), np.asarray(row, np.float64)))
    for track_id, average in averages.items():
        put(track_id, average.flush())
    return out


def write_segments_csv(path: str | os.PathLike, segments: Sequence[ActionSegment]) -> None:
    """CSV with a header: track_id,action_id,action,start_s,end_s,mean_score,max_score
    (times to the millisecond, scores to 4 decimals); written atomically."""
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SEGMENT_CSV_HEADER)
        for s in segments:
            writer.writerow(
                [
                    s.track_id,
                    s.action_id,
                    s.action_name,
                    f"{s.start_s:.3f}",
                    f"{s.end_s:.3f}",
                    f"{s.mean_score:.4f}",
                    f"{s.max_score:.4f}",
                ]
            )


def write_segments_json(
    path: str | os.PathLike,
    segments: Sequence[ActionSegment],
    *,
    duration_s: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """JSON ``{"duration_s", "metadata", "segments": [...], "totals_s": {action: seconds}}``
    with one object per segment (the `ActionSegment` fields); written atomically."""
    doc = {
        "duration_s": duration_s,
        "metadata": metadata or {},
        "segments": [asdict(s) for s in segments],
        "totals_s": action_totals(segments),
    }
    with atomic_write(path) as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def action_totals(segments: Sequence[ActionSegment]) -> dict[str, float]:
    """Seconds of each action summed over all persons (two persons doing it at once count
    twice), by action name, largest first."""
    totals: dict[str, float] = {}
    for s in segments:
        totals[s.action_name] = totals.get(s.action_name, 0.0) + s.duration_s
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))
