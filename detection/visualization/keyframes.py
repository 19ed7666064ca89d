"""AVA ground truth and/or predictions drawn on a video's keyframes: a PNG contact sheet of
the keyframes, or an MP4 of the span they cover (each frame shows its nearest keyframe's boxes).

Times: an AVA timestamp T (seconds of the movie) is video time T - `video_start_sec`; AVA's
15-minute cuts start at 900 s (`AVA.VIDEO_START_SEC`), full movies at 0.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from detection.ava.csv_io import read_ava_csv
from detection.ava.labelmap import LabelMap
from detection.data.video import VideoReader, VideoReadError
from detection.errors import UserError, shorten
from detection.structures.boxes import denormalize_boxes
from detection.visualization.draw import Label, draw_detections
from detection.visualization.mp4 import Mp4Writer
from detection.visualization.sheet import contact_sheet, save_png


class RenderError(UserError, ValueError):
    """The CSVs, video and options given to `render_ava` do not fit together (no rows for the
    video, keyframes outside it, an unknown output type); the message names the file."""


@dataclass
class KeyframeBoxes:
    """Boxes of one keyframe in normalized coordinates, with their labels best first."""

    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[list[Label]] = field(default_factory=list)

    def add(self, box: tuple[float, float, float, float], label: Label | None) -> None:
        if box not in self.boxes:
            self.boxes.append(box)
            self.labels.append([])
        if label is not None:
            self.labels[self.boxes.index(box)].append(label)

    def pixel_boxes(self, height: int, width: int) -> np.ndarray:
        return denormalize_boxes(np.array(self.boxes, np.float32), height, width)


def group_rows(
    rows: pd.DataFrame,
    video_id: str,
    labelmap: LabelMap | None,
    *,
    score_thresh: float | None = None,
    top_k: int | None = None,
) -> dict[int, KeyframeBoxes]:
    """Rows of `video_id` (as `read_ava_csv` returns them) grouped by AVA second and box.

    Box-less ground-truth rows are skipped. With `score_thresh`, labels scoring below it are
    dropped (their box stays, unlabelled); with `top_k`, each box keeps its `top_k` best labels.
    """
    names = labelmap.names if labelmap is not None else {}
    rows = rows[(rows["video_id"] == video_id) & rows["x1"].notna()]
    scores = rows["score"] if "score" in rows else pd.Series(np.nan, index=rows.index)
    grouped: dict[int, KeyframeBoxes] = defaultdict(KeyframeBoxes)
    for second, x1, y1, x2, y2, action_id, score in zip(
        rows["timestamp"],
        rows["x1"],
        rows["y1"],
        rows["x2"],
        rows["y2"],
        rows["action_id"],
        scores,
        strict=True,
    ):
        label = None
        has_score = not np.isnan(score)
        if action_id >= 0 and (score_thresh is None or not has_score or score >= score_thresh):
            name = names.get(int(action_id), f"action {action_id}")
            label = (int(action_id), name, float(score) if has_score else None)
        grouped[int(second)].add((float(x1), float(y1), float(x2), float(y2)), label)
    for keyframe in grouped.values():
        for labels in keyframe.labels:
            labels.sort(key=lambda lab: (-(lab[2] or 0.0), lab[0]))
            if top_k is not None:
                del labels[top_k:]
    return dict(grouped)


def _draw(frame, gt: KeyframeBoxes | None, pred: KeyframeBoxes | None) -> np.ndarray:
    height, width = frame.shape[:2]
    if gt is not None:
        frame = draw_detections(
            frame, gt.pixel_boxes(height, width), gt.labels, style="ground_truth"
        )
    if pred is not None:
        frame = draw_detections(frame, pred.pixel_boxes(height, width), pred.labels)
    return frame


@dataclass(frozen=True)
class RenderSummary:
    output: Path
    keyframes: int
    frames: int
    ground_truth_boxes: int
    predicted_boxes: int


def render_ava(
    video_path: str | Path,
    output: str | Path,
    *,
    ground_truth: str | Path | None = None,
    predictions: str | Path | None = None,
    video_id: str | None = None,
    labelmap: LabelMap | None = None,
    timestamps: Sequence[int] | None = None,
    video_start_sec: float = 900.0,
    score_thresh: float = 0.3,
    top_k: int = 3,
    max_sheet_frames: int = 24,
    columns: int = 4,
) -> RenderSummary:
    """Draw AVA CSV boxes on `video_path` and write `output` (.png contact sheet or .mp4).

    Args:
        ground_truth, predictions: AVA CSVs (at least one); ground truth is dashed with labels
            below the box, predictions solid with "name score" above it.
        video_id: the CSVs' id of this video (default: the file name without extension).
        labelmap: names of the action ids (ids are shown as "action N" without it).
        timestamps: AVA seconds to show (default: every keyframe the CSVs have for the video).
        video_start_sec: AVA second of the video's first frame (900 for AVA's 15-minute cuts).
        score_thresh, top_k: prediction labels shown per box.
        max_sheet_frames: a PNG shows at most this many keyframes, evenly spaced.
    """
    video_path, output = Path(video_path), Path(output)
    if ground_truth is None and predictions is None:
        raise RenderError("give a ground-truth CSV, a prediction CSV, or both")
    if output.suffix.lower() not in (".png", ".mp4"):
        raise RenderError(f"{output}: the output must end in .png (contact sheet) or .mp4")
    if max_sheet_frames < 1:
        raise RenderError(f"max_sheet_frames must be at least 1, got {max_sheet_frames}")
    if not video_path.is_file():
        raise VideoReadError(f"{video_path}: video file not found")
    video_id = video_id or video_path.stem
    gt = pred = None
    csvs: list[str] = []
    known: set[str] = set()
    if ground_truth is not None:
        rows = read_ava_csv(ground_truth, kind="groundtruth")
        csvs.append(str(ground_truth))
        known |= set(rows["video_id"])
        gt = group_rows(rows, video_id, labelmap)
    if predictions is not None:
        rows = read_ava_csv(predictions, kind="detections")
        csvs.append(str(predictions))
        known |= set(rows["video_id"])
        pred = group_rows(rows, video_id, labelmap, score_thresh=score_thresh, top_k=top_k)
    if not (gt or pred):
        ids = sorted(known)
        example = ", ".join(shorten(i, 40) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise RenderError(
            f"{' and '.join(csvs)}: no rows for video {video_id!r} (video ids there: "
            f"{example or 'none'}); pass the CSVs' id of this video"
        )
    if timestamps is None:
        keys = sorted(set(gt or {}) | set(pred or {}))
    else:
        keys = sorted({int(t) for t in timestamps})
    if not keys:
        raise RenderError("no keyframes to draw (empty timestamp list)")
    if output.suffix.lower() == ".png":
        if len(keys) > max_sheet_frames:
            keys = [
                keys[i] for i in np.linspace(0, len(keys) - 1, max_sheet_frames).round().astype(int)
            ]
        return _render_sheet(video_path, output, video_id, keys, gt, pred, video_start_sec, columns)
    return _render_video(video_path, output, keys, gt, pred, video_start_sec)


def _count(grouped: dict[int, KeyframeBoxes] | None, keys: Sequence[int]) -> int:
    return sum(len(grouped[k].boxes) for k in keys if grouped and k in grouped)


def _check_times(reader: VideoReader, times: Sequence[float], start: float) -> None:
    outside = [t for t in times if t < -0.5 or t > reader.duration + 0.5]
    if outside:
        raise RenderError(
            f"{reader.path} lasts {reader.duration:.1f} s but AVA seconds "
            f"{outside[0] + start:g}..{outside[-1] + start:g} fall outside it with video start "
            f"second {start:g} (AVA's 15-minute cuts start at 900, full movies at 0)"
        )


def _render_sheet(video_path, output, video_id, keys, gt, pred, start, columns) -> RenderSummary:
    with VideoReader(video_path) as reader:
        _check_times(reader, [k - start for k in keys], start)
        frames = reader.read_at_times([k - start for k in keys])
    tiles, captions = [], []
    for key, frame in zip(keys, frames, strict=True):
        g, p = (gt or {}).get(key), (pred or {}).get(key)
        tiles.append(_draw(frame, g, p))
        parts = [f"{video_id} {key}"]
        if gt is not None:
            parts.append(f"GT {len(g.boxes) if g else 0}")
        if pred is not None:
            parts.append(f"pred {len(p.boxes) if p else 0}")
        captions.append("  ".join(parts))
    save_png(output, contact_sheet(tiles, captions, columns=columns))
    return RenderSummary(output, len(keys), len(keys), _count(gt, keys), _count(pred, keys))


def _render_video(video_path, output, keys, gt, pred, start) -> RenderSummary:
    times = [k - start for k in keys]
    frames = 0
    with VideoReader(video_path) as reader:
        _check_times(reader, times, start)
    with VideoReader(video_path) as reader, Mp4Writer(output, fps=reader.fps) as writer:
        # Half a second either side, so every keyframe is the nearest one for a full second.
        for frame, t in reader.iter_frames(max(0.0, times[0] - 0.5), times[-1] + 0.5):
            i = bisect.bisect_left(times, t)
            if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
                i -= 1
            writer.write(_draw(frame, (gt or {}).get(keys[i]), (pred or {}).get(keys[i])))
            frames += 1
    if frames == 0:
        raise RenderError(
            f"{video_path} has no frames between {times[0]:.1f} s and {times[-1]:.1f} s"
        )
    return RenderSummary(output, len(keys), frames, _count(gt, keys), _count(pred, keys))
