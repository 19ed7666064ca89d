"""The sequential demo loop on a user's video: person boxes and AVA action scores on keyframes
(through an `ActionPredictor`), an annotated H.264 video, and the AVA-format CSV and JSON of the
scores. The command line runs the streaming engine (`detection.engine.stream`) instead; this loop
stays as the reference it is measured and tested against (``--sequential``,
benchmarks/demo_speed.py), and its helpers (`keyframe_times`, `top_actions`) are the engine's.

The video is streamed twice and never held in memory: pass 1 seeks to each keyframe and decodes
only its clip (detector + action model), pass 2 decodes the span frame by frame, draws the
predictions of the nearest keyframe (so labels stay on screen between keyframes) and encodes.
Peak memory is one clip plus the per-keyframe predictions, whatever the length of the video.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from yacs.config import CfgNode

from detection.ava.csv_io import write_detections
from detection.ava.labelmap import LabelMap
from detection.data.video import VideoReader
from detection.engine.predictor import ActionPredictor, ClipPrediction, StageTimes
from detection.errors import UserError
from detection.utils.atomic import atomic_write
from detection.visualization import Mp4Writer, draw_banner, draw_detections
from detection.visualization.draw import banner_height
from detection.visualization.mp4 import TIMED_TIME_BASE

UNTRAINED_NOTICE = "UNTRAINED action model: scores are meaningless"


class DemoError(UserError, RuntimeError):
    """A user mistake the demo reports in one line (an empty span, no keyframe rate...)."""


# The temporaries of a result set are named ``.partial+HOST+PID+TOKEN+NAME`` beside NAME (the
# extension stays last, since some writers pick the format from it); a writer's own temporary of
# that file (atomic_write, Mp4Writer) adds a leading dot and a ``.tmp`` suffix. "+" is in no
# host name, so the fields split unambiguously.
_PARTIAL = "partial"


class ResultSet:
    """The output files of one run, made consistent: each is written to a temporary beside its
    final path (`temp`), and `commit` renames them all into place at the end, so a run that
    fails or is killed leaves the previous complete set (or none), never new files beside stale
    ones. `discard` removes the temporaries after a failure; the temporaries a killed run left
    behind are removed by the next `ResultSet` of the same files (`remove_stale`).

    A committed file gets the mode of the file it replaces, or the mode a plain `open` gives
    under the process umask (the writers create the temporaries with `open`, not `mkstemp`).
    """

    def __init__(self, finals: Iterable[str | os.PathLike]) -> None:
        self.finals = [Path(p) for p in finals]
        self._host = socket.gethostname().replace("+", "_")
        self._prefix = f".{_PARTIAL}+{self._host}+{os.getpid()}+{secrets.token_hex(4)}+"
        self.removed_stale = self.remove_stale()

    def temp(self, final: str | os.PathLike) -> Path:
        """Where the run writes `final` until `commit`."""
        final = Path(final)
        return final.with_name(self._prefix + final.name)

    def commit(self) -> None:
        """Rename every temporary that was written over its final path (one `os.replace` each,
        one after the other, after all writing is done)."""
        for final in self.finals:
            temp = self.temp(final)
            if not temp.exists():
                continue
            try:
                os.chmod(temp, stat.S_IMODE(final.stat().st_mode))
            except FileNotFoundError:
                pass  # a new file keeps the mode its writer's open() gave it
            os.replace(temp, final)

    def discard(self) -> None:
        """Remove this run's temporaries (after a failure): the previous set stays as it was."""
        mine = self._prefix.lstrip(".")
        for path in _partials_of(self.finals):
            if path.name.lstrip(".").startswith(mine):
                path.unlink(missing_ok=True)

    def remove_stale(self) -> int:
        """Remove temporaries of these files left by runs that are no longer running (killed);
        those of a live process on this machine are kept. Returns how many were removed."""
        removed = 0
        for path in _partials_of(self.finals):
            host, pid = path.name.lstrip(".").split("+")[1:3]
            if host == self._host and _process_alive(int(pid)):
                continue
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _partials_of(finals: list[Path]) -> list[Path]:
    """The result-set temporaries of `finals` (see `_PARTIAL`); each folder is listed once."""
    names: dict[Path, set[str]] = {}
    for final in finals:
        names.setdefault(final.parent, set()).add(final.name)
    head = re.compile(rf"^(\.{{1,2}}){_PARTIAL}\+[^+/]+\+\d+\+[0-9a-f]+\+")
    found = []
    for folder, wanted in names.items():
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            match = head.match(entry.name)
            if match is None:
                continue
            rest = entry.name[match.end() :]
            ours = rest in wanted if match[1] == "." else _writer_temp_of(rest, wanted)
            if ours:
                found.append(Path(folder) / entry.name)
    return found


def _writer_temp_of(rest: str, wanted: set[str]) -> bool:
    """Whether `rest` is a writer's own temporary of one of `wanted` (NAME.XXXX.tmp)."""
    return rest.endswith(".tmp") and any(rest.startswith(f"{name}.") for name in wanted)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@dataclass
class DemoResult:
    """What `run_demo` predicted and wrote: `predictions[i]` is the keyframe at
    `keyframe_times[i]` (s from the start of the video, float64 [K])."""

    keyframe_times: np.ndarray
    predictions: list[ClipPrediction]
    frames_written: int
    fps: float
    span_s: tuple[float, float]
    times: StageTimes
    untrained: bool


def keyframe_times(start_s: float, end_s: float, per_second: float) -> np.ndarray:
    """Keyframes every ``1 / per_second`` s from the first whole multiple of that period at or
    after `start_s`, strictly before `end_s`: float64 [N]. With 1 per second they are the whole
    seconds of the span, as AVA's keyframes are."""
    if per_second <= 0:
        raise DemoError(f"DEMO.KEYFRAMES_PER_SEC must be > 0, got {per_second}")
    first = math.ceil(start_s * per_second - 1e-9)
    last = math.ceil(end_s * per_second - 1e-9)
    return np.arange(first, last, dtype=np.float64) / per_second


def nearest_keyframe(keyframes: np.ndarray, t: float) -> int:
    """Index of the keyframe nearest time `t` (the earlier one on a tie)."""
    i = int(np.searchsorted(keyframes, t))
    if i == 0:
        return 0
    if i == len(keyframes) or t - keyframes[i - 1] <= keyframes[i] - t:
        return i - 1
    return i


def top_actions(
    scores: np.ndarray, labelmap: LabelMap, threshold: float, top_k: int
) -> list[tuple[int, str, float]]:
    """The `top_k` best (action id, name, score) of one person with score >= `threshold`, among
    the classes the label map names. scores: [C], column i = action id i + 1."""
    ranked = [
        (action_id, labelmap.names[action_id], float(scores[action_id - 1]))
        for action_id in labelmap.ids
        if scores[action_id - 1] >= threshold
    ]
    ranked.sort(key=lambda item: -item[2])
    return ranked[:top_k]


def _resolve_span(reader: VideoReader, start_s: float, end_s: float | None) -> tuple[float, float]:
    end = reader.duration if end_s is None else min(end_s, reader.duration)
    if start_s < 0 or start_s >= end:
        raise DemoError(
            f"{reader.path}: span --start {start_s} --end {end_s} is empty; the video lasts "
            f"{reader.duration:.2f} s"
        )
    return start_s, end


def run_demo(
    cfg: CfgNode,
    input_path: str | Path,
    output_video: str | Path,
    *,
    output_csv: str | Path | None = None,
    output_json: str | Path | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    ava_second_offset: int = 0,
    show_progress: bool = True,
    predictor: ActionPredictor | None = None,
) -> DemoResult:
    """Run the whole demo on `input_path[start_s, end_s)` and write the requested outputs.

    `predictor` scores the keyframes (None: `ActionPredictor.from_config(cfg)`, loaded here);
    cfg gives DEMO.KEYFRAMES_PER_SEC, DEMO.ACTION_SCORE_THRESH and DEMO.TOP_K.
    The CSV holds one row per (keyframe at a whole second, person, action) in the official AVA
    format, with timestamp = keyframe second + `ava_second_offset` (900 for AVA's 15-minute cuts),
    so `tools/eval_ava.py` reads it; keyframes between whole seconds are in the JSON only.
    The outputs are one `ResultSet`: all replaced at the end, or none.
    """
    input_path = Path(input_path)
    finals = [Path(p) for p in (output_video, output_csv, output_json) if p is not None]
    result_set = ResultSet(finals)
    try:
        result = _run_demo(
            cfg,
            input_path,
            result_set.temp(output_video),
            None if output_csv is None else result_set.temp(output_csv),
            None if output_json is None else result_set.temp(output_json),
            start_s,
            end_s,
            ava_second_offset,
            show_progress,
            predictor,
        )
    except BaseException:
        result_set.discard()
        raise
    result_set.commit()
    return result


def _run_demo(
    cfg: CfgNode,
    input_path: Path,
    output_video: Path,
    output_csv: Path | None,
    output_json: Path | None,
    start_s: float,
    end_s: float | None,
    ava_second_offset: int,
    show_progress: bool,
    predictor: ActionPredictor | None,
) -> DemoResult:
    times = StageTimes()
    video_id = input_path.stem

    with VideoReader(input_path) as reader:
        span = _resolve_span(reader, start_s, end_s)
        keyframes = keyframe_times(*span, cfg.DEMO.KEYFRAMES_PER_SEC)
        if len(keyframes) == 0:
            keyframes = np.array([span[0]])
        # Loaded after the video and span are known good, so that a mistake there is reported
        # at once rather than after the models load.
        if predictor is None:
            predictor = ActionPredictor.from_config(cfg)
        predictions = []
        for t in tqdm(keyframes, desc="keyframes", unit="kf", disable=not show_progress):
            with times.measure("decode"):
                frames = reader.read_at_times(
                    predictor.clip_format.clip_times(float(t), reader.duration).tolist()
                )
            predictions.append(
                predictor(
                    frames,
                    video_id=video_id,
                    timestamp=int(round(t)) + ava_second_offset,
                    times=times,
                )
            )
        frames_written = _write_video(
            cfg,
            reader,
            span,
            keyframes,
            predictions,
            predictor.labelmap,
            predictor.untrained,
            output_video,
            times,
            show_progress,
        )
        fps = reader.fps

    if output_csv is not None:
        with times.measure("write_results"):
            _write_csv(
                output_csv,
                keyframes,
                predictions,
                predictor.num_classes,
                video_id,
                ava_second_offset,
            )
    if output_json is not None:
        with times.measure("write_results"):
            _write_json(output_json, cfg, keyframes, predictions, predictor, input_path)
    return DemoResult(keyframes, predictions, frames_written, fps, span, times, predictor.untrained)


def _write_video(
    cfg: CfgNode,
    reader: VideoReader,
    span: tuple[float, float],
    keyframes: np.ndarray,
    predictions: list[ClipPrediction],
    labelmap: LabelMap,
    untrained: bool,
    output_video: str | Path,
    times: StageTimes,
    show_progress: bool,
) -> int:
    labels_per_keyframe = [
        [
            top_actions(scores, labelmap, cfg.DEMO.ACTION_SCORE_THRESH, cfg.DEMO.TOP_K)
            for scores in prediction.action_scores
        ]
        for prediction in predictions
    ]
    expected = max(1, round((span[1] - span[0]) * reader.fps))
    count = 0
    frames = reader.iter_frames(*span)
    with (
        Mp4Writer(output_video, fps=reader.fps, time_base=TIMED_TIME_BASE) as writer,
        tqdm(total=expected, desc="video", unit="frame", disable=not show_progress) as bar,
    ):
        while True:
            with times.measure("decode"):
                item = next(frames, None)
            if item is None:
                break
            frame, t = item
            with times.measure("draw"):
                k = nearest_keyframe(keyframes, t)
                prediction = predictions[k]
                frame = draw_detections(
                    frame,
                    prediction.boxes,
                    labels_per_keyframe[k],
                    person_scores=prediction.person_scores,
                    reserve_bottom_px=banner_height(
                        frame.shape[0], frame.shape[1], UNTRAINED_NOTICE
                    )
                    if untrained
                    else 0,
                )
                if untrained:
                    frame = draw_banner(frame, UNTRAINED_NOTICE, at="bottom")
            with times.measure("encode"):
                writer.write(frame, t)
            count += 1
            bar.update()
        with times.measure("encode"):
            writer.close()
    return count


def _write_csv(
    path: str | Path,
    keyframes: np.ndarray,
    predictions: list[ClipPrediction],
    num_classes: int,
    video_id: str,
    offset: int,
) -> None:
    whole_seconds = [
        (int(t), p) for t, p in zip(keyframes, predictions, strict=True) if float(t).is_integer()
    ]
    timestamps = [t + offset for t, p in whole_seconds for _ in range(len(p))]
    boxes = np.concatenate([p.normalized_boxes for _, p in whole_seconds] or [np.zeros((0, 4))])
    scores = np.concatenate(
        [p.action_scores for _, p in whole_seconds] or [np.zeros((0, num_classes))]
    )
    action_ids = list(range(1, num_classes + 1))
    write_detections(path, [video_id] * len(timestamps), timestamps, boxes, scores, action_ids)


def _write_json(
    path: str | Path,
    cfg: CfgNode,
    keyframes: np.ndarray,
    predictions: list[ClipPrediction],
    predictor: ActionPredictor,
    input_path: Path,
) -> None:
    def actions(scores: np.ndarray) -> list[dict]:
        return [
            {"id": a, "name": n, "score": round(s, 5)}
            for a, n, s in top_actions(
                scores, predictor.labelmap, cfg.DEMO.ACTION_SCORE_THRESH, cfg.DEMO.TOP_K
            )
        ]

    doc = {
        "video": str(input_path),
        "untrained_action_model": predictor.untrained,
        "action_weights": predictor.weights,
        "keyframes": [
            {
                "time_s": float(t),
                "persons": [
                    {
                        "box_xyxy_px": [round(float(v), 2) for v in p.boxes[i]],
                        "person_score": float(p.person_scores[i]),
                        "actions": actions(p.action_scores[i]),
                    }
                    for i in range(len(p))
                ],
            }
            for t, p in zip(keyframes, predictions, strict=True)
        ],
    }
    with atomic_write(path) as f:
        json.dump(doc, f, indent=1)
