"""The streaming engine: persons, their tracks and AVA actions through a whole video (or a live
stream) in one pass, with every stage running at once.

Stages and what connects them::

    decode thread ──clips──▶ detect+track thread ──▶ action thread (keyframes batched)
         │                                                   │ results (in keyframe order)
         └────────────frames to draw────────────▶ main thread: draw + encode (waits for the
                                                  keyframe after each frame offline)

* Decode: each source frame is decoded once (`sources`), placed on the 30 fps layout grid
  (ffmpeg's ``-r`` rule for files, nearest time live) into a buffer that holds exactly the
  frames of the next keyframe's clip window (keyframe - half clip .. keyframe + half clip);
  a clip is cut (uint8 RGB [T, H, W, 3]) as soon as its last frame arrives, and the frames of
  the span go on to be drawn.
* Detect + track: the person detector on the middle frames of the clips waiting (up to
  `batch_size`, one `detect_batch` call; it never waits for more), then `PersonTracker.update`
  clip by clip (tracks need keyframes in time order, so one thread).
* Action model: `ActionPredictor.predict_batch` on up to `batch_size` keyframes, with the
  detected boxes; then `ActionSegmenter.update` with each person's track id.
* Draw + encode: boxes between keyframes follow the tracks (`interpolate_track_boxes` between
  the two neighbouring keyframes offline, `PersonTracker.predict` live), labelled with the
  actions of the track at the nearest scored keyframe and its id; H.264 through `Mp4Writer`.

Queues are bounded, so memory does not grow with the length of the video: the frames queue
holds what the drawing must wait for (one keyframe period per batched keyframe plus half a clip),
the clip queues a few clips. torch, OpenCV and PyAV release the GIL, so threads overlap.

Live mode keeps up with the stream: a clip that the models have not started when the next one is
cut is dropped (counted in `skipped_keyframes`), and frames are drawn as they arrive with the
tracks' predicted boxes, so latency stays at most half a clip plus one model call.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from yacs.config import CfgNode

from detection.ava.csv_io import write_detections
from detection.engine.demo import (
    UNTRAINED_NOTICE,
    DemoError,
    ResultSet,
    keyframe_times,
    top_actions,
)
from detection.engine.predictor import ActionPredictor, ClipPrediction, StageTimes
from detection.engine.sources import FileSource, LiveSource, open_source
from detection.person import PersonDetections
from detection.utils.atomic import atomic_write
from detection.visualization import Mp4Writer, draw_banner, draw_detections
from detection.visualization.draw import banner_height
from detection.visualization.mp4 import TIMED_TIME_BASE

# Two times closer than this are the same frame (float rounding of pts x time_base).
_EPS_S = 1e-6
# How long a blocked queue operation sleeps before it checks whether another stage failed.
_POLL_S = 0.1
_END = object()


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs.

    batch_size: keyframes per action-model call (live mode takes what is waiting, up to this),
        and at most per person-detector call (offline; it takes the clips already waiting).
    threads: False runs every stage in turn in the calling thread (same results; for measuring
        what the threads gain). live: drop keyframes the models cannot keep up with (set for
        live sources). max_seconds: stop a live source after this many seconds of video.
    """

    batch_size: int = 1
    threads: bool = True
    live: bool = False
    max_seconds: float | None = None


@dataclass(frozen=True)
class OutputPaths:
    """Files a run writes; None skips one. Only `video` is required."""

    video: Path
    csv: Path | None = None
    json: Path | None = None
    segments_csv: Path | None = None
    segments_json: Path | None = None
    timeline: Path | None = None

    @classmethod
    def beside(cls, video: str | Path, **explicit: str | Path | None) -> OutputPaths:
        """Every output beside `video` with its stem (OUT.csv, OUT.json, OUT_segments.csv,
        OUT_segments.json, OUT_timeline.png) unless given in `explicit`."""
        video = Path(video)
        stem = video.with_suffix("")
        defaults = {
            "csv": video.with_suffix(".csv"),
            "json": video.with_suffix(".json"),
            "segments_csv": Path(f"{stem}_segments.csv"),
            "segments_json": Path(f"{stem}_segments.json"),
            "timeline": Path(f"{stem}_timeline.png"),
        }
        chosen = {k: Path(given) if (given := explicit.get(k)) else v for k, v in defaults.items()}
        return cls(video=video, **chosen)

    def files(self) -> list[Path]:
        """The paths to write, `video` first."""
        return [p for p in vars(self).values() if p is not None]

    def mapped(self, fn: Callable[[Path], Path]) -> OutputPaths:
        """The same outputs with each path replaced by `fn(path)` (None stays None)."""
        return dataclasses.replace(
            self, **{k: fn(p) for k, p in vars(self).items() if p is not None}
        )


@dataclass(frozen=True)
class KeyframeResult:
    """One scored keyframe: `prediction` (detected boxes, their action scores), `track_ids`
    int64 [N] (the track of each box, -1 when the tracker kept none), `tracked` (the tracker's
    `TrackedPersons` at this keyframe, boxes x1 y1 x2 y2 in pixels), `labels` (per box, its top
    actions as (action id, name, score)) and the same labels by track id."""

    index: int
    time_s: float
    prediction: ClipPrediction
    track_ids: np.ndarray
    tracked: Any
    labels: list[list[tuple[int, str, float]]]

    @property
    def labels_by_track(self) -> dict[int, list[tuple[int, str, float]]]:
        return {
            int(t): labels for t, labels in zip(self.track_ids, self.labels, strict=True) if t >= 1
        }


@dataclass
class EngineResult:
    """What a run scored and wrote. `results` are the scored keyframes in time order (live mode:
    without the `skipped_keyframes` of the `keyframes_cut`); `frames_decoded` counts the source
    frames decoded (from the first frame any clip needs); `max_buffered_slots` is the most layout
    frames the clip buffer held at once."""

    source: str
    results: list[KeyframeResult]
    frames_written: int
    frames_decoded: int
    fps: float
    span_s: tuple[float, float]
    times: StageTimes
    untrained: bool
    skipped_keyframes: int = 0
    keyframes_cut: int = 0
    max_buffered_slots: int = 0
    segments: list = field(default_factory=list)
    outputs: OutputPaths | None = None
    wall_s: float = 0.0

    @property
    def keyframe_times(self) -> np.ndarray:
        """float64 [K], s from the start of the video (live: of the stream)."""
        return np.array([r.time_s for r in self.results], dtype=np.float64)

    @property
    def predictions(self) -> list[ClipPrediction]:
        return [r.prediction for r in self.results]

    @property
    def num_tracks(self) -> int:
        ids = {int(i) for r in self.results for i in r.track_ids if i >= 1}
        return len(ids)


@dataclass
class _Clip:
    index: int
    time_s: float
    frames: np.ndarray


@dataclass
class _Detected:
    clip: _Clip
    detections: PersonDetections
    tracked: Any
    track_ids: np.ndarray


class _Stopped(Exception):
    """Another stage failed; this one stops quietly (the failure is re-raised by the caller)."""


class _Stages:
    """The shared state of one run's threads: the first failure and the stop flag."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.results_ready = threading.Condition()

    def fail(self, error: BaseException) -> None:
        if self.error is None and not isinstance(error, _Stopped):
            self.error = error
        self.stop.set()
        with self.results_ready:
            self.results_ready.notify_all()

    def put(self, q: queue.Queue, item: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                self.fail(e)

        worker = threading.Thread(target=run, name=name, daemon=True)
        worker.start()
        return worker


class _LatestClip:
    """Live mode's clip hand-over: one slot; a new clip replaces one the models have not taken
    (that keyframe is skipped)."""

    def __init__(self) -> None:
        self._slot: list[object] = []
        self._cond = threading.Condition()
        self.skipped = 0

    def put(self, item: object) -> None:
        with self._cond:
            if self._slot and self._slot[0] is not _END:
                self.skipped += 1
            self._slot[:] = [item]
            self._cond.notify()

    def get(self, stages: _Stages) -> object:
        with self._cond:
            while not self._slot:
                if stages.stop.is_set():
                    raise _Stopped
                self._cond.wait(_POLL_S)
            item = self._slot[0]
            if item is not _END:
                self._slot.clear()
            return item


class ClipCutter:
    """Places decoded frames on the layout grid and cuts each keyframe's clip as soon as its
    last frame is there; holds only the slots of clips still to cut.

    `layout_times`: float64 [L], the source frame time of each layout slot (ffmpeg's rule), or
    None to give each slot the decoded frame nearest its time (the earlier on a tie)."""

    def __init__(
        self,
        layout_times: np.ndarray | None,
        layout_fps: float,
        clip_slots: Callable[[float], np.ndarray],
    ) -> None:
        self._table = layout_times
        self._fps = layout_fps
        self._clip_slots = clip_slots
        self._buffer: dict[int, np.ndarray] = {}
        self._next_slot = 0
        self._prev: tuple[np.ndarray, float] | None = None
        self._pending: deque[tuple[int, float, np.ndarray]] = deque()
        self.max_buffered = 0

    def add_keyframe(self, index: int, time_s: float) -> None:
        slots = self._clip_slots(time_s)
        if self._table is not None:
            slots = np.clip(slots, 0, len(self._table) - 1)
        if not self._pending and not self._buffer:
            self._next_slot = max(self._next_slot, int(slots.min()))
        self._pending.append((index, time_s, slots))

    @property
    def first_needed_slot(self) -> int | None:
        return int(self._pending[0][2].min()) if self._pending else None

    def first_source_time(self) -> float | None:
        """Time of the earliest source frame the pending clips need."""
        slot = self.first_needed_slot
        if slot is None:
            return None
        if self._table is not None:
            return float(self._table[slot])
        return slot / self._fps - 0.5 / self._fps

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, frame: np.ndarray, t: float) -> list[_Clip]:
        """Take the next decoded frame (time order); return the clips it completes."""
        if self._table is not None:
            while self._next_slot < len(self._table) and self._table[self._next_slot] <= t + _EPS_S:
                self._store(self._next_slot, frame)
                self._next_slot += 1
        else:
            while self._next_slot / self._fps <= t + _EPS_S:
                slot_t = self._next_slot / self._fps
                prev = self._prev
                use_prev = prev is not None and (slot_t - prev[1]) <= (t - slot_t) + _EPS_S
                self._store(self._next_slot, prev[0] if use_prev and prev else frame)
                self._next_slot += 1
            self._prev = (frame, t)
        return self._cut(final=False)

    def finish(self) -> list[_Clip]:
        """The stream ended: clips still waiting take the last frame for their missing slots
        (the reader's past-the-end rule)."""
        return self._cut(final=True)

    def _store(self, slot: int, frame: np.ndarray) -> None:
        first = self.first_needed_slot
        if first is not None and slot >= first:
            self._buffer[slot] = frame
            self.max_buffered = max(self.max_buffered, len(self._buffer))

    def _cut(self, final: bool) -> list[_Clip]:
        clips = []
        while self._pending:
            index, time_s, slots = self._pending[0]
            if not final and int(slots.max()) >= self._next_slot:
                break
            if not self._buffer and self._prev is None:
                break  # nothing decoded at all
            last = self._buffer[max(self._buffer)] if self._buffer else self._prev[0]  # type: ignore[index]
            frames = np.stack([self._buffer.get(int(s), last) for s in slots])
            clips.append(_Clip(index, time_s, frames))
            self._pending.popleft()
            first = self.first_needed_slot
            keep_from = first if first is not None else self._next_slot
            for slot in [s for s in self._buffer if s < keep_from]:
                del self._buffer[slot]
        return clips


def _tracking():
    # Imported on use: the tracker's dependencies load only when a run starts.
    from detection.person import tracking

    return tracking


def _segments_module():
    from detection.engine import segments

    return segments


class StreamEngine:
    """Runs sources through a loaded `ActionPredictor` (see the module docstring).

    cfg gives DEMO.KEYFRAMES_PER_SEC, DEMO.ACTION_SCORE_THRESH (labels drawn, segments start at
    it and end below 0.7 of it), DEMO.TOP_K."""

    def __init__(
        self,
        cfg: CfgNode,
        predictor: ActionPredictor,
        options: EngineOptions | None = None,
    ) -> None:
        self.cfg = cfg
        self.predictor = predictor
        self.options = options or EngineOptions()
        if self.options.batch_size < 1:
            raise DemoError(f"batch size must be >= 1, got {self.options.batch_size}")
        self.keyframes_per_sec = float(cfg.DEMO.KEYFRAMES_PER_SEC)
        if self.keyframes_per_sec <= 0:
            raise DemoError(f"DEMO.KEYFRAMES_PER_SEC must be > 0, got {self.keyframes_per_sec}")
        self.threshold = float(cfg.DEMO.ACTION_SCORE_THRESH)
        self.top_k = int(cfg.DEMO.TOP_K)

    # -- one run ----------------------------------------------------------------------------

    def run(
        self,
        source: str | Path | FileSource | LiveSource,
        outputs: OutputPaths,
        *,
        start_s: float = 0.0,
        end_s: float | None = None,
        ava_second_offset: int = 0,
        show_progress: bool = True,
    ) -> EngineResult:
        """Score `source[start_s, end_s)` and write `outputs` as one `ResultSet`: every file
        is written to a temporary beside it and all are renamed into place at the end, so a run
        that fails or is killed leaves the previous complete set (temporaries a killed run left
        are removed when the same outputs are written again)."""
        wall_start = time.perf_counter()
        result_set = ResultSet(outputs.files())
        staged = outputs.mapped(result_set.temp)
        try:
            opened = source if isinstance(source, (FileSource, LiveSource)) else open_source(source)
            try:
                run = _Run(self, opened, staged, start_s, end_s, show_progress, ava_second_offset)
                run.execute()
            finally:
                if opened is not source:
                    opened.close()
            result = run.result()
            self._write_outputs(result, staged, opened, ava_second_offset, run.segmenter)
        except BaseException:
            result_set.discard()
            raise
        with result.times.measure("write_results"):
            result_set.commit()
        result.outputs = outputs
        result.wall_s = time.perf_counter() - wall_start
        return result

    def _write_outputs(self, result, outputs, source, ava_second_offset, segmenter) -> None:
        times = result.times
        with times.measure("write_results"):
            if outputs.csv is not None:
                _write_csv(
                    outputs.csv,
                    result.results,
                    self.predictor.num_classes,
                    source.stem,
                    ava_second_offset,
                )
            if outputs.json is not None:
                _write_json(outputs.json, result, self.predictor, source.name)
            result.segments = segmenter.finish()
            segments = _segments_module()
            if outputs.segments_csv is not None:
                segments.write_segments_csv(outputs.segments_csv, result.segments)
            if outputs.segments_json is not None:
                segments.write_segments_json(
                    outputs.segments_json,
                    result.segments,
                    duration_s=result.span_s[1],
                    metadata={"video": source.name, "untrained_action_model": result.untrained},
                )
            if outputs.timeline is not None:
                from detection.visualization.timeline import draw_timeline

                # Segment times are from the start of the video, so the axis runs from 0.
                draw_timeline(
                    result.segments,
                    max(result.span_s[1], 1e-3),
                    outputs.timeline,
                    title=Path(source.name).name,
                )

    def labels_of(self, scores: np.ndarray) -> list[tuple[int, str, float]]:
        return top_actions(scores, self.predictor.labelmap, self.threshold, self.top_k)


def _rows(tracked: Any, keep: np.ndarray) -> Any:
    """The rows `keep` (bool [N]) of a `TrackedPersons`."""
    return type(tracked)(
        tracked.boxes[keep],
        tracked.scores[keep],
        tracked.track_ids[keep],
        tracked.detection_index[keep],
    )


def boxes_between_keyframes(keyframe_times: list[float], tracked: list[Any], time_s: float) -> Any:
    """The persons drawn at `time_s` from the `TrackedPersons` of the one or two keyframes
    around it (offline mode): only rows detected at their keyframe (detection_index >= 0; a
    track the detector lost has no box to follow, and held still it would mark an empty place),
    linearly interpolated when seen at both keyframes (`interpolate_track_boxes`); a person seen
    at one keyframe only is drawn in the half of the interval nearer to it. Boxes x1 y1 x2 y2 in
    pixels."""
    seen = [_rows(p, np.asarray(p.detection_index) >= 0) for p in tracked]
    persons = _tracking().interpolate_track_boxes(np.array(keyframe_times), seen, time_s)
    nearest = min(range(len(seen)), key=lambda i: abs(keyframe_times[i] - time_s))
    shown = set.intersection(*[set(p.track_ids.tolist()) for p in seen])
    shown |= set(seen[nearest].track_ids.tolist())
    return _rows(persons, np.array([int(i) in shown for i in persons.track_ids], bool))


class _Run:
    """The state of one `StreamEngine.run`."""

    def __init__(
        self,
        engine: StreamEngine,
        source: FileSource | LiveSource,
        outputs: OutputPaths,
        start_s: float,
        end_s: float | None,
        show_progress: bool,
        ava_second_offset: int = 0,
    ) -> None:
        self.engine = engine
        self.ava_second_offset = ava_second_offset
        self.clips_cut = 0
        self.predictor = engine.predictor
        self.source = source
        self.outputs = outputs
        self.live = source.live or engine.options.live
        self.times = StageTimes()
        self.show_progress = show_progress
        fmt = self.predictor.clip_format
        if source.duration is not None:
            end = source.duration if end_s is None else min(end_s, source.duration)
            if start_s < 0 or start_s >= end:
                raise DemoError(
                    f"{source.name}: span --start {start_s} --end {end_s} is empty; the video "
                    f"lasts {source.duration:.2f} s"
                )
            self.span = (float(start_s), float(end))
            planned = keyframe_times(*self.span, engine.keyframes_per_sec)
            self.keyframes: list[float] = planned.tolist() if len(planned) else [self.span[0]]
        else:
            limit = engine.options.max_seconds
            if end_s is None and limit is not None:
                end_s = start_s + limit
            self.span = (float(start_s), math.inf if end_s is None else float(end_s))
            self.keyframes = []
        self.duration = source.duration
        self.cutter = ClipCutter(
            source.layout_times(),
            fmt.fps,
            lambda t: np.rint(fmt.clip_times(t, self.duration) * fmt.fps).astype(np.int64),
        )
        tracking = _tracking()
        self.tracker = tracking.PersonTracker(fps=engine.keyframes_per_sec)
        self.tracker_lock = threading.Lock()
        self.segmenter = _segments_module().ActionSegmenter(
            self.predictor.labelmap,
            on_threshold=engine.threshold,
            off_threshold=0.7 * engine.threshold,
            keyframe_period_s=1.0 / engine.keyframes_per_sec,
            duration_s=self.span[1] if math.isfinite(self.span[1]) else None,
        )
        self._labelmap_columns = np.array(self.predictor.labelmap.ids, np.int64) - 1
        self.results: list[KeyframeResult] = []
        self.latest_labels: dict[int, list[tuple[int, str, float]]] = {}
        self.frames_written = 0
        self.last_frame_time = self.span[0]
        self.stages = _Stages()
        self.latest_clip = _LatestClip()
        self.writer: Mp4Writer | None = None

    # -- decode -----------------------------------------------------------------------------

    def _events(self) -> Iterator[tuple[str, Any]]:
        """("clip", _Clip) and ("frame", (rgb, t)) in stream order."""
        for i, t in enumerate(self.keyframes):
            self.cutter.add_keyframe(i, t)
        start, end = self.span
        decode_from = start
        first = self.cutter.first_source_time()
        if first is not None:
            decode_from = max(0.0, min(start, first))
        period = 1.0 / self.engine.keyframes_per_sec
        next_live = math.ceil(start / period - 1e-9) * period
        live_index = 0
        frames = self.source.frames(decode_from, None)
        while True:
            with self.times.measure("decode"):
                item = next(frames, None)
            if item is None:
                break
            rgb, t = item
            if self.live:
                if t >= end:
                    break
                while next_live <= t + _EPS_S:
                    self.cutter.add_keyframe(live_index, next_live)
                    live_index += 1
                    next_live += period
            for clip in self.cutter.push(rgb, t):
                self.clips_cut += 1
                yield "clip", clip
            if start - _EPS_S <= t < end:
                yield "frame", (rgb, t)
            elif t >= end and self.cutter.pending == 0:
                break
        if self.live:
            # Clips still waiting for frames past the end of a live stream are not cut.
            return
        for clip in self.cutter.finish():
            self.clips_cut += 1
            yield "clip", clip

    # -- models -----------------------------------------------------------------------------

    def _detect_track(self, clips: list[_Clip]) -> list[_Detected]:
        """Persons on the clips' keyframes in one detector call, then tracked clip by clip in
        order (the tracker sees the keyframes as it would one at a time)."""
        with self.times.measure("detect"):
            found = self.predictor.detect_batch(
                [clip.frames[len(clip.frames) // 2] for clip in clips],
                video_id=self.source.stem,
                timestamps=[round(clip.time_s) + self.ava_second_offset for clip in clips],
            )
        detected = []
        for clip, detections in zip(clips, found, strict=True):
            with self.times.measure("track"), self.tracker_lock:
                tracked = self.tracker.update(detections, clip.time_s)
            track_ids = np.full(len(detections), -1, np.int64)
            rows = np.asarray(tracked.detection_index)
            track_ids[rows[rows >= 0]] = np.asarray(tracked.track_ids)[rows >= 0]
            detected.append(_Detected(clip, detections, tracked, track_ids))
        return detected

    def _score(self, batch: list[_Detected]) -> list[KeyframeResult]:
        predictions = self.predictor.predict_batch(
            [d.clip.frames for d in batch],
            [d.detections for d in batch],
            video_id=self.source.stem,
            timestamps=[d.clip.time_s for d in batch],
            times=self.times,
        )
        out = []
        for d, prediction in zip(batch, predictions, strict=True):
            labels = [self.engine.labels_of(scores) for scores in prediction.action_scores]
            keep = d.track_ids >= 1
            # The segmenter's column c is label map id c; the model's column i is id i + 1.
            scores = prediction.action_scores[keep][:, self._labelmap_columns]
            # Keyframes without anyone are given too: they end the segments running across them.
            self.segmenter.update(d.clip.time_s, d.track_ids[keep], scores)
            out.append(
                KeyframeResult(
                    d.clip.index, d.clip.time_s, prediction, d.track_ids, d.tracked, labels
                )
            )
        return out

    def _publish(self, results: list[KeyframeResult]) -> None:
        with self.stages.results_ready:
            self.results.extend(results)
            for r in results:
                self.latest_labels = r.labels_by_track
            self.stages.results_ready.notify_all()

    # -- draw -------------------------------------------------------------------------------

    def _neighbours(self, t: float) -> tuple[int | None, int | None]:
        """Indices into `self.keyframes` of the keyframe at or before `t` and the one after."""
        i = int(np.searchsorted(self._keyframe_array, t + _EPS_S, side="right"))
        before = i - 1 if i > 0 else None
        after = i if i < len(self._keyframe_array) else None
        return before, after

    def _ready(self, t: float) -> bool:
        """Offline: the frame at `t` can be drawn once the keyframe after it is scored."""
        before, after = self._neighbours(t)
        needed = after if after is not None else before
        return needed is None or len(self.results) > needed

    def _draw(self, rgb: np.ndarray, t: float) -> np.ndarray:
        if self.live:
            with self.tracker_lock:
                persons = self.tracker.predict(t)
            labels_by_track = self.latest_labels
            label_of = lambda tid: labels_by_track.get(tid, [])  # noqa: E731
        else:
            before, after = self._neighbours(t)
            sides = [k for k in (before, after) if k is not None]
            if not sides:
                return rgb
            chosen = [self.results[k] for k in sides]
            # Only the persons detected at each keyframe: a track the detector lost there has
            # no box to follow, and held still it would mark an empty place.
            persons = boxes_between_keyframes(
                [r.time_s for r in chosen], [r.tracked for r in chosen], t
            )
            by_track = [r.labels_by_track for r in sorted(chosen, key=lambda r: abs(r.time_s - t))]

            def label_of(tid: int) -> list[tuple[int, str, float]]:
                return next((m[tid] for m in by_track if tid in m), [])

        ids = [int(i) for i in persons.track_ids]
        labels = [label_of(i) for i in ids]
        untrained = self.predictor.untrained
        # No label goes under the banner's strip.
        banner = banner_height(rgb.shape[0], rgb.shape[1], UNTRAINED_NOTICE) if untrained else 0
        frame = draw_detections(
            rgb,
            persons.boxes,
            labels,
            person_scores=persons.scores,
            track_ids=ids,
            reserve_bottom_px=banner,
        )
        if untrained:
            frame = draw_banner(frame, UNTRAINED_NOTICE, at="bottom")
        return frame

    def _render(self, rgb: np.ndarray, t: float, bar: tqdm) -> None:
        with self.times.measure("draw"):
            frame = self._draw(rgb, t)
        with self.times.measure("encode"):
            assert self.writer is not None
            # The source's frame times, not i / fps: variable-frame-rate input keeps its timing.
            self.writer.write(frame, t)
        self.frames_written += 1
        self.last_frame_time = t
        bar.update()

    # -- orchestration ----------------------------------------------------------------------

    def execute(self) -> None:
        self._keyframe_array = np.array(self.keyframes, dtype=np.float64)
        expected = None
        if math.isfinite(self.span[1]):
            expected = max(1, round((self.span[1] - self.span[0]) * self.source.fps))
        with (
            Mp4Writer(self.outputs.video, fps=self.source.fps, time_base=TIMED_TIME_BASE) as writer,
            tqdm(total=expected, desc="video", unit="frame", disable=not self.show_progress) as bar,
        ):
            self.writer = writer
            if self.engine.options.threads:
                self._execute_threads(bar)
            else:
                self._execute_in_turn(bar)
            with self.times.measure("encode"):
                writer.close()

    def _execute_in_turn(self, bar: tqdm) -> None:
        clips: list[_Clip] = []
        detected: list[_Detected] = []
        waiting: deque[tuple[np.ndarray, float]] = deque()
        size = self.engine.options.batch_size

        def flush(final: bool) -> None:
            # Live, each clip is tracked as it comes: the drawing predicts from the tracks.
            if clips and (self.live or final or len(clips) >= size):
                detected.extend(self._detect_track(clips))
                clips.clear()
            if detected and (final or len(detected) >= size):
                self._publish(self._score(detected))
                detected.clear()
            while waiting and (self.live or final or self._ready(waiting[0][1])):
                self._render(*waiting.popleft(), bar)

        for kind, item in self._events():
            if kind == "clip":
                clips.append(item)
            else:
                waiting.append(item)
            flush(final=False)
        flush(final=True)

    def _frame_queue_size(self) -> int:
        """Frames the drawing may wait behind: until the keyframe after a frame is scored, i.e.
        one keyframe period per keyframe of a batch plus half a clip, plus slack."""
        if self.live:
            return max(4, math.ceil(self.source.fps / 2))
        fmt = self.predictor.clip_format
        half_clip_s = fmt.clip_length * fmt.sampling_rate / fmt.fps / 2
        wait_s = (self.engine.options.batch_size + 1) / self.engine.keyframes_per_sec + half_clip_s
        # x1.5: a variable frame rate can be denser than its average for a while.
        return math.ceil(1.5 * wait_s * self.source.fps) + 8

    def _execute_threads(self, bar: tqdm) -> None:
        stages = self.stages
        frames_q: queue.Queue = queue.Queue(self._frame_queue_size())
        # Room for a whole batch: the detector takes the clips waiting here, up to batch_size.
        clips_q: queue.Queue = queue.Queue(max(2, self.engine.options.batch_size))
        detected_q: queue.Queue = queue.Queue(self.engine.options.batch_size + 1)

        def decode() -> None:
            for kind, item in self._events():
                if kind == "frame":
                    stages.put(frames_q, item)
                elif self.live:
                    self.latest_clip.put(item)
                else:
                    stages.put(clips_q, item)
            stages.put(frames_q, _END)
            if self.live:
                self.latest_clip.put(_END)
            else:
                stages.put(clips_q, _END)

        def detect() -> None:
            size = self.engine.options.batch_size
            ended = False
            while not ended:
                clip = self.latest_clip.get(stages) if self.live else stages.get(clips_q)
                if not isinstance(clip, _Clip):
                    break
                clips = [clip]
                # Only clips already waiting join the batch: waiting for more would delay the
                # first. Live hand-over holds one clip (a newer one replaces it), so live
                # batches are of one.
                while not self.live and len(clips) < size:
                    try:
                        item = clips_q.get_nowait()
                    except queue.Empty:
                        break
                    if not isinstance(item, _Clip):
                        ended = True
                        break
                    clips.append(item)
                for detected in self._detect_track(clips):
                    stages.put(detected_q, detected)
            stages.put(detected_q, _END)

        def score() -> None:
            size = self.engine.options.batch_size
            done = False
            while not done:
                batch = [stages.get(detected_q)]
                if batch[0] is _END:
                    break
                while len(batch) < size:
                    if self.live:
                        try:
                            item = detected_q.get_nowait()
                        except queue.Empty:
                            break
                    else:
                        item = stages.get(detected_q)
                    if item is _END:
                        done = True
                        break
                    batch.append(item)
                self._publish(self._score(batch))
            with stages.results_ready:
                self._models_done = True
                stages.results_ready.notify_all()

        self._models_done = False
        workers = [
            stages.thread("decode", decode),
            stages.thread("detect", detect),
            stages.thread("action", score),
        ]
        try:
            while True:
                item = stages.get(frames_q)
                if item is _END:
                    break
                rgb, t = item
                if not self.live:
                    with self.times.measure("wait"), stages.results_ready:
                        while not (self._ready(t) or self._models_done or stages.stop.is_set()):
                            stages.results_ready.wait(_POLL_S)
                    if stages.stop.is_set():
                        raise _Stopped
                self._render(rgb, t, bar)
            for worker in workers:
                while worker.is_alive():
                    worker.join(_POLL_S)
                    if stages.stop.is_set():
                        break
        except BaseException as e:
            stages.fail(e)
        finally:
            # Workers stop at their next queue operation once `stop` is set (by a failure).
            for worker in workers:
                worker.join(5.0)
        if stages.error is not None:
            raise stages.error
        if not self.live and len(self.results) < len(self.keyframes):
            raise RuntimeError(
                f"{self.source.name}: {len(self.results)} of {len(self.keyframes)} keyframes scored"
            )

    def result(self) -> EngineResult:
        results = sorted(self.results, key=lambda r: r.time_s)
        span_end = self.span[1] if math.isfinite(self.span[1]) else self.last_frame_time
        return EngineResult(
            source=self.source.name,
            results=results,
            frames_written=self.frames_written,
            frames_decoded=self.source.frames_decoded,
            fps=self.source.fps,
            span_s=(self.span[0], span_end),
            times=self.times,
            untrained=self.predictor.untrained,
            skipped_keyframes=self.latest_clip.skipped,
            keyframes_cut=self.clips_cut,
            max_buffered_slots=self.cutter.max_buffered,
        )


def _write_csv(
    path: Path, results: list[KeyframeResult], num_classes: int, video_id: str, offset: int
) -> None:
    """The official 8-column AVA CSV: keyframes at whole seconds only (as `run_demo` writes)."""
    whole = [r for r in results if float(r.time_s).is_integer()]
    timestamps = [int(r.time_s) + offset for r in whole for _ in range(len(r.prediction))]
    boxes = np.concatenate([r.prediction.normalized_boxes for r in whole] or [np.zeros((0, 4))])
    scores = np.concatenate(
        [r.prediction.action_scores for r in whole] or [np.zeros((0, num_classes))]
    )
    write_detections(
        path,
        [video_id] * len(timestamps),
        timestamps,
        boxes,
        scores,
        list(range(1, num_classes + 1)),
    )


def _write_json(
    path: Path, result: EngineResult, predictor: ActionPredictor, source_name: str
) -> None:
    """Per keyframe, per person: box, person score, track id (null: untracked), top actions."""
    doc = {
        "video": source_name,
        "untrained_action_model": predictor.untrained,
        "action_weights": predictor.weights,
        "skipped_keyframes": result.skipped_keyframes,
        "keyframes": [
            {
                "time_s": float(r.time_s),
                "persons": [
                    {
                        "track_id": int(r.track_ids[i]) if r.track_ids[i] >= 1 else None,
                        "box_xyxy_px": [round(float(v), 2) for v in r.prediction.boxes[i]],
                        "person_score": float(r.prediction.person_scores[i]),
                        "actions": [
                            {"id": a, "name": n, "score": round(s, 5)} for a, n, s in r.labels[i]
                        ],
                    }
                    for i in range(len(r.prediction))
                ],
            }
            for r in result.results
        ],
    }
    with atomic_write(path) as f:
        json.dump(doc, f, indent=1)
