"""AVA annotations as PySlowFast reads them: keyframes, their person boxes and action labels.

Rows are parsed (and validated, with file:line errors) by the one AVA CSV parser,
`detection.ava.csv_io.read_ava_csv`; this module applies PySlowFast's loading rules:

- ground-truth files (``video,sec,x1,y1,x2,y2,action,person``) and predicted person-box files
  (``video,sec,x1,y1,x2,y2,,score``) are read into one table per split; a predicted box whose
  score is below ``AVA.DETECTION_SCORE_THRESH`` is dropped (a box file without a score column
  has nothing to threshold, so its boxes are kept); a score equal to the threshold is kept;
- a box given on several rows (one per action) becomes one box with all those actions; a row
  with an empty action (or -1 in a box file) keeps its box with no label (a negative box);
- ground-truth rows without a box (``video,sec,,,,,,``: the frame was annotated, nobody in it)
  add nothing;
- only seconds ``AVA.VALID_FRAMES_START_SEC .. AVA.VALID_FRAMES_END_SEC`` are keyframes; rows
  outside are skipped, counted and logged (the reference skips them too);
- a keyframe is used only if it has at least one box;
- action ids must lie in 1 .. MODEL.NUM_CLASSES (column ``i`` of a label vector is action
  ``i + 1``): an unknown id is an error naming the file and row. Training on all 80 classes
  and evaluating on the 60 of ``ava_action_list_v2.2_for_activitynet_2019.pbtxt`` is the
  evaluator's business, not the loader's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from detection.ava.csv_io import AvaCsvError, read_ava_csv, read_ava_text
from detection.errors import UserError, shorten

logger = logging.getLogger(__name__)


class AnnotationError(UserError, ValueError):
    """An AVA annotation or frame-list file is inconsistent; the message names file and row."""


@dataclass(frozen=True)
class Keyframe:
    """One annotated keyframe: its boxes and, per box, the action ids (empty = negative box)."""

    video_id: str
    second: int
    # float64 [N, 4] normalized x1, y1, x2, y2 as written in the file (PySlowFast parses them
    # with float() and keeps them in float64 until its collate), in first-seen order.
    boxes: np.ndarray
    labels: tuple[tuple[int, ...], ...]  # N tuples of action ids (1-based)

    def multi_hot(self, num_classes: int) -> np.ndarray:
        """float32 [N, num_classes]: column i is action i + 1."""
        out = np.zeros((len(self.labels), num_classes), dtype=np.float32)
        for row, actions in enumerate(self.labels):
            out[row, [a - 1 for a in actions]] = 1.0
        return out


def read_box_files(
    gt_files: Sequence[str | Path],
    predicted_files: Sequence[str | Path],
    *,
    score_thresh: float,
    num_classes: int,
) -> pd.DataFrame:
    """All box rows of the given files in file order: video_id, timestamp, x1, y1, x2, y2,
    action_id (-1 = no action), with predicted rows below `score_thresh` dropped and action ids
    checked against 1 .. num_classes."""
    tables = []
    files: list[tuple[str | Path, Literal["groundtruth", "boxes"]]] = [
        (p, "groundtruth") for p in gt_files
    ]
    files += [(p, "boxes") for p in predicted_files]
    for path, kind in files:
        # One row per file line, in order: index + 1 stays the line number through filtering.
        table = read_ava_csv(path, kind=kind)
        if kind == "boxes":
            low = table["score"] < score_thresh
            if low.any():
                logger.info(
                    "%s: %d boxes below DETECTION_SCORE_THRESH %.3f dropped",
                    path,
                    int(low.sum()),
                    score_thresh,
                )
            table = table[~low]
        actions = table["action_id"]
        bad = (actions != -1) & ((actions < 1) | (actions > num_classes))
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnnotationError(
                f"{path}:{table.index[first] + 1}: action id {actions.iloc[first]} is not in "
                f"1..{num_classes} (MODEL.NUM_CLASSES)"
            )
        tables.append(table[["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id"]])
    if not tables:
        raise AnnotationError("no box files given (AVA.*_BOX_LISTS are empty)")
    return pd.concat(tables, ignore_index=True)


def group_keyframes(rows: pd.DataFrame, valid_seconds: range) -> list[Keyframe]:
    """Group box rows into keyframes (sorted by video and second), merging rows of the same box.

    `rows` as returned by `read_box_files`. Rows without a box and seconds outside
    `valid_seconds` are skipped (the latter counted and logged)."""
    rows = rows.dropna(subset=["x1", "y1", "x2", "y2"])
    outside = ~rows["timestamp"].isin(valid_seconds)
    if outside.any():
        logger.warning(
            "%d box rows at seconds outside %d..%d skipped",
            int(outside.sum()),
            valid_seconds.start,
            valid_seconds.stop - 1,
        )
        rows = rows[~outside]
    keyframes = []
    for (video_id, _), group in rows.groupby(["video_id", "timestamp"], sort=True):
        boxes: dict[tuple[float, float, float, float], list[int]] = {}
        for x1, y1, x2, y2, action in group[["x1", "y1", "x2", "y2", "action_id"]].itertuples(
            index=False
        ):
            actions = boxes.setdefault((x1, y1, x2, y2), [])
            if action != -1 and action not in actions:
                actions.append(int(action))
        keyframes.append(
            Keyframe(
                video_id=str(video_id),
                second=int(group["timestamp"].iloc[0]),
                boxes=np.array(list(boxes), dtype=np.float64).reshape(-1, 4),
                labels=tuple(tuple(sorted(a)) for a in boxes.values()),
            )
        )
    return keyframes


def read_frame_lists(paths: Sequence[str | Path], frame_dir: str | Path) -> dict[str, list[Path]]:
    """PySlowFast frame lists (header, then ``original_id video_idx frame_idx path labels``,
    space separated) -> {video_id: frame paths under `frame_dir`, index = frame number}.

    The encoding and line ends are those of every AVA file (`detection.ava.csv_io`: UTF-8, a
    byte-order mark skipped, ``\n``, ``\r\n`` or ``\r``); fields are separated by runs of
    whitespace, so they hold none, and blank lines are skipped. A malformed row raises
    `AnnotationError` naming the file and line (bytes that are not UTF-8: `AvaCsvError`)."""
    frames: dict[str, list[Path]] = {}
    for path in paths:
        try:
            lines = read_ava_text(path).splitlines()
        except AvaCsvError as e:
            raise AnnotationError(f"frame list: {e}") from e
        for line_no, line in enumerate(lines[1:], start=2):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 5:
                raise AnnotationError(
                    f"{path}:{line_no}: expected 5 space-separated fields "
                    f"(original_vido_id video_id frame_id path labels), got {len(parts)}"
                )
            video_id, _, frame_id, rel_path, _ = parts
            video_frames = frames.setdefault(video_id, [])
            # isascii: str.isdigit() is true of digits such as "²" that int() refuses.
            in_order = frame_id.isascii() and frame_id.isdigit()
            if not in_order or int(frame_id) != len(video_frames):
                raise AnnotationError(
                    f"{path}:{line_no}: frame_id {shorten(frame_id)!r} of {shorten(video_id)} is "
                    f"out of order (expected {len(video_frames)})"
                )
            video_frames.append(Path(frame_dir) / rel_path)
    return frames
