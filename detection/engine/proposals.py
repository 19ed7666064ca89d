"""Person boxes ("proposals") for the keyframes of a set of videos, in AVA's predicted-box format.

A person detector of `detection.person` runs on the frame each keyframe's clip centres on, as
the dataset reads it: second ``s`` is frame ``(s - video_start_sec) * fps`` of the ``fps``
layout (`detection.data.sampling.keyframe_index`), clamped to the video like a clip's frames,
read with the dataset's `VideoReader` rules. The result is a CSV of rows
``video_id,second,x1,y1,x2,y2,,score`` (normalized, (x1, y1) the top-left corner; seconds
zero-padded to 4 digits and coordinates with 3 decimals as in AVA's files, scores with 6), which
``read_ava_csv(kind="boxes")`` reads and ``AVA.TRAIN_PREDICT_BOX_LISTS`` /
``AVA.TEST_PREDICT_BOX_LISTS`` name.

Resumable: each video's rows go to their own part file, written atomically into
``.{output name}.parts/`` beside the output; a rerun skips videos whose part exists (unless the
settings recorded there differ: then the parts are stale and are removed). The output is
assembled from the parts (in video order) only when every video is done, and written
atomically, so an interrupted run never leaves an output file. Under torchrun each rank takes
whole videos (every world-size-th of the sorted list) and rank 0 assembles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detection.data.sampling import keyframe_index
from detection.data.video import VideoReader
from detection.person.base import PersonDetector
from detection.structures.boxes import normalize_boxes
from detection.utils.atomic import atomic_write

from . import distributed as du
from .metrics_log import progress

logger = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
_FRAMES_PER_READ = 8  # keyframes decoded per read: bounds memory on HD video


@dataclass(frozen=True)
class KeyframeRule:
    """Where keyframes are: AVA second ``s`` is at ``s - video_start_sec`` seconds of the video
    file, frame ``(s - video_start_sec) * fps`` of its ``fps`` layout; only seconds in `valid`
    are keyframes (``AVA.FPS``, ``AVA.VIDEO_START_SEC``, ``AVA.VALID_FRAMES_*_SEC``)."""

    fps: int
    video_start_sec: int
    valid: range

    def every_second(self, num_frames: int) -> list[int]:
        """Every whole second of `valid` whose keyframe frame is one of the video's
        `num_frames` frames."""
        last = self.video_start_sec + (num_frames - 1) // self.fps
        return list(
            range(max(self.valid.start, self.video_start_sec), min(self.valid.stop, last + 1))
        )

    def frame_times(self, seconds: Sequence[int], num_frames: int) -> np.ndarray:
        """float64 [len(seconds)]: the time (s from the video start) of each keyframe's frame,
        clamped to the video's `num_frames` frames as clip frames are."""
        frames = [
            keyframe_index(s, fps=self.fps, start_second=self.video_start_sec) for s in seconds
        ]
        return np.clip(np.asarray(frames, dtype=np.int64), 0, num_frames - 1) / self.fps


@dataclass(frozen=True)
class VideoKeyframes:
    """A video to run on: its id in the CSV, its file, and its keyframe seconds (None: every
    whole second of the video that `KeyframeRule.every_second` allows)."""

    video_id: str
    path: Path
    seconds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ProposalResult:
    """What `make_proposals` did on this rank: videos run now, videos found done by an earlier
    run, and (rank 0) the rows of the assembled `output` and the keyframes they are on (None and
    0 on other ranks)."""

    output: Path | None
    videos_run: int
    videos_skipped: int
    keyframes_with_boxes: int
    rows: int


def parts_dir(output: Path) -> Path:
    """The folder of per-video part files of `output`."""
    return output.parent / f".{output.name}.parts"


def make_proposals(
    videos: Sequence[VideoKeyframes],
    detector: PersonDetector,
    output: str | Path,
    rule: KeyframeRule,
    *,
    settings: dict | None = None,
    show_progress: bool = True,
) -> ProposalResult:
    """Run `detector` on the keyframes of `videos` and write `output` (see the module docstring).

    `settings`: what the boxes depend on besides the videos and the keyframe rule (detector
    name, weights, score threshold); parts made with other settings, rule or keyframes are
    removed, not reused.
    Collective under torchrun: every rank must call it with the same arguments.
    """
    output = Path(output)
    parts = parts_dir(output)
    ids = [v.video_id for v in videos]
    if len(set(ids)) != len(ids):
        raise ValueError("video ids must be unique")
    # Which frames each video's part covers: other keyframes (a changed ground truth, another
    # --keyframes choice) make the parts stale too.
    frames = json.dumps(sorted((v.video_id, v.seconds) for v in videos), default=list)
    record = json.dumps(
        {**(settings or {}), "fps": rule.fps, "video_start_sec": rule.video_start_sec,
         "valid": [rule.valid.start, rule.valid.stop - 1],
         "keyframes_sha1": hashlib.sha1(frames.encode()).hexdigest()},
        sort_keys=True,
    )  # fmt: skip
    if du.is_main_process():
        _prepare_parts(parts, record)
    du.barrier()

    mine = sorted(videos, key=lambda v: v.video_id)[du.get_rank() :: du.get_world_size()]
    run = skipped = 0
    bar = progress(mine, desc="proposals (videos)", total=len(mine)) if show_progress else mine
    for video in bar:
        part = parts / f"{video.video_id}.csv"
        if part.is_file():
            skipped += 1
            continue
        rows = _video_rows(video, detector, rule)
        with atomic_write(part, newline="") as f:
            f.write("".join(rows))
        run += 1
        logger.info("%s: %d boxes", video.video_id, len(rows))
    du.barrier()

    if not du.is_main_process():
        return ProposalResult(None, run, skipped, 0, 0)
    rows_total = 0
    keyframes: set[tuple[str, str]] = set()
    with atomic_write(output, newline="") as out:
        for video_id in sorted(ids):
            text = (parts / f"{video_id}.csv").read_text(encoding="utf-8")
            out.write(text)
            for line in text.splitlines():
                keyframes.add((video_id, line.split(",", 2)[1]))
                rows_total += 1
    shutil.rmtree(parts)
    return ProposalResult(output, run, skipped, len(keyframes), rows_total)


def _prepare_parts(parts: Path, record: str) -> None:
    """Create the parts folder, or keep its parts if they were made with the same settings."""
    settings = parts / SETTINGS_FILE
    if parts.is_dir():
        previous = settings.read_text(encoding="utf-8") if settings.is_file() else None
        if previous == record:
            return
        logger.warning("%s: parts made with other settings removed", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True)
    with atomic_write(settings) as f:
        f.write(record)


def iter_keyframes(
    path: str | Path, seconds: Sequence[int] | None, rule: KeyframeRule
) -> Iterator[tuple[int, np.ndarray]]:
    """(second, uint8 RGB frame [H, W, 3]) for each keyframe of the video at `path`, in the
    order of `seconds` (None: `rule.every_second`): the frame that the dataset's clip of that
    keyframe centres on, read with the dataset's reader settings."""
    with VideoReader(path) as reader:
        num_frames = reader.num_frames_at(rule.fps)
        wanted = list(seconds) if seconds is not None else rule.every_second(num_frames)
        times = rule.frame_times(wanted, num_frames)
        for start in range(0, len(wanted), _FRAMES_PER_READ):
            chunk = slice(start, start + _FRAMES_PER_READ)
            frames = reader.read_at_times(times[chunk])
            yield from zip(wanted[chunk], frames, strict=True)


def _video_rows(video: VideoKeyframes, detector: PersonDetector, rule: KeyframeRule) -> list[str]:
    """The CSV rows of one video's keyframes, in keyframe order, boxes by decreasing score."""
    rows: list[str] = []
    for second, frame in iter_keyframes(video.path, video.seconds, rule):
        found = detector.detect(frame, video_id=video.video_id, timestamp=float(second))
        rows += _format_rows(video.video_id, second, found.boxes, found.scores, frame.shape)
    return rows


def _format_rows(
    video_id: str, second: int, boxes_px: np.ndarray, scores: np.ndarray, shape: tuple[int, ...]
) -> list[str]:
    """Rows ``video,second,x1,y1,x2,y2,,score`` for pixel boxes [N, 4] of a frame of `shape`
    (H, W, 3); boxes left empty by the 3-decimal rounding are dropped."""
    height, width = shape[:2]
    boxes = np.clip(normalize_boxes(boxes_px, height, width).astype(np.float64), 0.0, 1.0)
    boxes = np.round(boxes, 3)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return [
        f"{video_id},{second:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},,{s:.6f}\n"
        for (x1, y1, x2, y2), s in zip(boxes[keep].tolist(), scores[keep].tolist(), strict=True)
        if math.isfinite(s)
    ]
