"""Person tracking across keyframes: stable ids for the boxes of a `PersonDetector`.

`PersonTracker` wraps a tracker of the `trackers` package (Roboflow): SORT by default (a
constant-velocity Kalman filter per track, IoU association solved optimally), or ByteTrack
(the same with a second association pass for weak detections). The tracker only sees
detections on keyframes, which are sparse (AVA's 1 per second by default), so it counts in
keyframes: a lost track is kept for `lost_track_s` seconds worth of keyframes, and a track
that misses a keyframe (a dropped or occluded detection) is still reported there for
`coast_keyframes` keyframes at the box its filter predicts. Between keyframes, `predict`
(live) moves each track on with its filtered velocity and `interpolate_track_boxes` (offline)
interpolates between the keyframes on either side.

Why SORT from `trackers` 2.1 (benchmarks/tracking_quality.py has the measurements): on
generated scenes of people crossing and hiding each other, at 1 keyframe per second, it
reaches a higher IDF1 than its ByteTrack and than supervision's (deprecated) ByteTrack, and
`trackers` 2.1 needs only numpy, scipy and supervision, where later releases require the GUI
build of OpenCV, which clashes with this project's opencv-python-headless.

Box convention everywhere: float32 [N, 4] (x1, y1, x2, y2) in frame pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detection.person.base import PersonDetections

ALGORITHMS = ("sort", "bytetrack")


@dataclass(frozen=True)
class TrackedPersons:
    """The tracked persons of one time.

    boxes: float32 [N, 4], (x1, y1, x2, y2) in frame pixels; a detected box is the detection's
        own box, a predicted or interpolated one may extend past the frame's edges.
    scores: float32 [N], the person-detector score of the matched detection (for a predicted or
        interpolated box, that of the track's last detection).
    track_ids: int64 [N], stable across keyframes, >= 1, unique within one time.
    detection_index: int64 [N], row in the input `PersonDetections`, -1 for a box predicted or
        interpolated without a detection at that time.
    """

    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray
    detection_index: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.track_ids)
        if (
            self.boxes.shape != (n, 4)
            or self.scores.shape != (n,)
            or self.detection_index.shape != (n,)
        ):
            raise ValueError(
                f"TrackedPersons fields disagree: boxes {self.boxes.shape}, scores "
                f"{self.scores.shape}, track_ids {self.track_ids.shape}, detection_index "
                f"{self.detection_index.shape}"
            )

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> TrackedPersons:
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0,), np.int64),
            np.zeros((0,), np.int64),
        )

    @classmethod
    def build(
        cls,
        boxes: Sequence | np.ndarray,
        scores: Sequence | np.ndarray,
        track_ids: Sequence | np.ndarray,
        detection_index: Sequence | np.ndarray,
    ) -> TrackedPersons:
        """From array-likes, converted to the documented dtypes and sorted by track id."""
        ids = np.asarray(track_ids, np.int64).reshape(-1)
        order = np.argsort(ids, kind="stable")
        return cls(
            np.asarray(boxes, np.float32).reshape(-1, 4)[order],
            np.asarray(scores, np.float32).reshape(-1)[order],
            ids[order],
            np.asarray(detection_index, np.int64).reshape(-1)[order],
        )


class PersonTracker:
    """Stable person ids across keyframes.

    Args:
        fps: keyframes per second fed to `update` (1.0 for AVA's one keyframe per second).
        algorithm: "sort" or "bytetrack" (module docstring). The library's ByteTrack gives a
            new person an id only at its second keyframe; SORT at its first.
        lost_track_s: seconds a track survives without a matching detection (occlusion,
            missed detection) before its id is retired; a person who reappears later gets a
            new id.
        activation_threshold: detections scoring at least this start new tracks; weaker ones
            only extend existing tracks.
        minimum_iou: the IoU a detection needs with a track's predicted box to continue it.
        coast_keyframes: a track that missed this many keyframes or fewer is still reported
            at its predicted box (detection_index -1), so one missed detection does not drop a
            person from the results; 0 reports detections only.
        max_extrapolation_s: `predict` extrapolates a track's motion at most this far past the
            last keyframe, then holds the box.
    """

    def __init__(
        self,
        *,
        fps: float,
        algorithm: str = "sort",
        lost_track_s: float = 5.0,
        activation_threshold: float = 0.5,
        minimum_iou: float = 0.2,
        coast_keyframes: int = 1,
        max_extrapolation_s: float = 1.0,
    ) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if lost_track_s < 0 or coast_keyframes < 0 or max_extrapolation_s < 0:
            raise ValueError(
                "lost_track_s, coast_keyframes and max_extrapolation_s must be >= 0, got "
                f"{lost_track_s}, {coast_keyframes}, {max_extrapolation_s}"
            )
        import supervision as sv
        import trackers

        self.fps = float(fps)
        self.coast_keyframes = int(coast_keyframes)
        self.max_extrapolation_s = float(max_extrapolation_s)
        # The library keeps a lost track while int(frame_rate / 30 * buffer) > frames missed;
        # frame_rate 30 makes that the buffer itself, counted in keyframes.
        options: dict[str, Any] = dict(
            lost_track_buffer=max(1, math.ceil(lost_track_s * self.fps) + 1),
            frame_rate=30.0,
            track_activation_threshold=activation_threshold,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=minimum_iou,
        )
        self._tracker: Any = (
            trackers.SORTTracker(**options)
            if algorithm == "sort"
            else trackers.ByteTrackTracker(**options)
        )
        self._sv = sv
        self._last_time: float | None = None
        # Library ids (a counter shared by all its trackers) -> ours, from 1 per tracker.
        self._ids: dict[int, int] = {}
        self._issued = 0
        self._scores: dict[int, float] = {}

    def _library_tracks(self) -> list[Any]:
        tracker = self._tracker
        return list(tracker.trackers if hasattr(tracker, "trackers") else tracker.tracks)

    def update(self, detections: PersonDetections, time_s: float) -> TrackedPersons:
        """Associate one keyframe's detections with the tracks; call in time order.

        Returns the tracked detections (detection_index >= 0) and the coasting tracks
        (detection_index -1), by track id. A detection that neither continues a track nor
        scores enough to start one is left out.
        """
        if self._last_time is not None and time_s <= self._last_time:
            raise ValueError(
                f"keyframes must come in increasing time order: {time_s} after {self._last_time}"
            )
        self._last_time = float(time_s)
        boxes = np.asarray(detections.boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(detections.scores, np.float32).reshape(-1)
        n = len(scores)
        out = self._tracker.update(
            self._sv.Detections(
                xyxy=boxes,
                confidence=scores,
                class_id=np.zeros(n, int),
                data={"index": np.arange(n)},
            )
        )
        tracked = np.asarray(out.tracker_id, np.int64) != -1 if len(out) else np.zeros(0, bool)
        index = np.asarray(out.data["index"], np.int64)[tracked] if len(out) else []
        raw_ids = np.asarray(out.tracker_id, np.int64)[tracked] if len(out) else []
        rows_ids = [self._public_id(int(r)) for r in raw_ids]
        rows_boxes = [boxes[i] for i in index]
        rows_scores = [float(scores[i]) for i in index]
        rows_index = [int(i) for i in index]
        for raw, i in zip(raw_ids, index, strict=True):
            self._scores[int(raw)] = float(scores[i])
        seen = {int(r) for r in raw_ids}
        for track in self._library_tracks():
            raw = int(track.tracker_id)
            if raw == -1 or raw in seen or not 1 <= track.time_since_update <= self.coast_keyframes:
                continue
            rows_ids.append(self._public_id(raw))
            rows_boxes.append(np.asarray(track.get_state_bbox(), np.float32))
            rows_scores.append(self._scores.get(raw, 0.0))
            rows_index.append(-1)
        # Forget retired tracks (a live stream meets unboundedly many).
        live = {int(t.tracker_id) for t in self._library_tracks()}
        self._scores = {k: v for k, v in self._scores.items() if k in live}
        self._ids = {k: v for k, v in self._ids.items() if k in live}
        if not rows_ids:
            return TrackedPersons.empty()
        return TrackedPersons.build(rows_boxes, rows_scores, rows_ids, rows_index)

    def _public_id(self, raw: int) -> int:
        if raw not in self._ids:
            self._issued += 1
            self._ids[raw] = self._issued
        return self._ids[raw]

    def predict(self, time_s: float) -> TrackedPersons:
        """Boxes of the live tracks at `time_s` (between keyframes, in live mode).

        The tracks the last `update` reported (detected or coasting): each one's filtered box
        at the last keyframe moves on with its filtered velocity for at most
        `max_extrapolation_s`. All rows have detection_index -1; empty before the first
        `update`.
        """
        if self._last_time is None:
            return TrackedPersons.empty()
        dt = min(max(time_s - self._last_time, 0.0), self.max_extrapolation_s)
        rows = []
        for track in self._library_tracks():
            raw = int(track.tracker_id)
            if raw == -1 or raw not in self._ids or track.time_since_update > self.coast_keyframes:
                continue
            # State: box [4] then its change per keyframe [4].
            state = np.asarray(track.state, np.float64).reshape(-1)
            box = state[:4] + state[4:8] * dt * self.fps
            rows.append((self._ids[raw], box, self._scores.get(raw, 0.0)))
        if not rows:
            return TrackedPersons.empty()
        return TrackedPersons.build(
            [r[1] for r in rows], [r[2] for r in rows], [r[0] for r in rows], [-1] * len(rows)
        )


def interpolate_track_boxes(
    keyframe_times: np.ndarray | Sequence[float],
    tracked: Sequence[TrackedPersons],
    time_s: float,
) -> TrackedPersons:
    """Track boxes at `time_s` from the tracked keyframes around it (offline mode).

    Args:
        keyframe_times: float64 [K], increasing, the times of `tracked`.
        tracked: K results of `PersonTracker.update`.
        time_s: any time; before the first or after the last keyframe the nearest is used.
    Returns:
        A track present at both neighbouring keyframes gets its box linearly interpolated; a
        track present at one of them only holds that box. detection_index is the keyframe's
        when `time_s` is exactly a keyframe time, -1 otherwise.
    """
    times = np.asarray(keyframe_times, np.float64).reshape(-1)
    if len(times) != len(tracked):
        raise ValueError(f"{len(times)} keyframe times for {len(tracked)} tracked keyframes")
    if len(times) == 0:
        return TrackedPersons.empty()
    if np.any(np.diff(times) <= 0):
        raise ValueError("keyframe_times must be strictly increasing")
    right = int(np.searchsorted(times, time_s, side="left"))
    if right < len(times) and times[right] == time_s:
        return tracked[right]
    if right == 0:
        return _without_detections(tracked[0])
    if right == len(times):
        return _without_detections(tracked[-1])
    left = right - 1
    a, b = tracked[left], tracked[right]
    w = (time_s - times[left]) / (times[right] - times[left])
    rows: dict[int, tuple[np.ndarray, float]] = {}
    b_rows = {int(t): i for i, t in enumerate(b.track_ids)}
    for i, t in enumerate(a.track_ids):
        j = b_rows.get(int(t))
        if j is None:
            rows[int(t)] = (a.boxes[i], float(a.scores[i]))
        else:
            box = (1 - w) * a.boxes[i].astype(np.float64) + w * b.boxes[j].astype(np.float64)
            rows[int(t)] = (box, float((1 - w) * a.scores[i] + w * b.scores[j]))
    for t, j in b_rows.items():
        rows.setdefault(t, (b.boxes[j], float(b.scores[j])))
    if not rows:
        return TrackedPersons.empty()
    ids = sorted(rows)
    return TrackedPersons.build(
        [rows[t][0] for t in ids], [rows[t][1] for t in ids], ids, [-1] * len(ids)
    )


def _without_detections(t: TrackedPersons) -> TrackedPersons:
    return TrackedPersons(t.boxes, t.scores, t.track_ids, np.full(len(t), -1, np.int64))
