"""Frame-mAP for AVA under two protocols, vectorized: the official ActivityNet evaluator
(``get_ava_performance.py``, protocol "official") and PySlowFast's in-memory evaluation
(``slowfast/utils/ava_eval_helper.py`` ``evaluate_ava``, protocol "pyslowfast"), which gives the
numbers of PySlowFast's model zoo. Both share the matching and the AP; they differ in the cap per
frame and in the order in which a frame's detections and boxes are taken.

The official protocol, step by step as the official evaluator runs it:

1. Only rows whose action id is in the label map are read (60 classes for AVA's evaluation map).
2. A frame is the pair (video_id, timestamp). Per frame, detections are capped at the 50 highest
   scoring (score, action, box) entries: the official reader keeps a min-heap of 50 per frame and
   lets a new row in only when its score is strictly greater than the smallest kept score.
3. Frames listed in the excluded-timestamps file are removed from both sides.
4. Detections with an empty or inverted box (x1 >= x2 or y1 >= y2) are dropped, after the cap
   (they may take a place in it).
5. Per frame and class, detections are taken by descending score; each is matched to the
   ground-truth box of its class and frame with the highest IoU (coordinates as written, no +1,
   no clipping; the first such box on equal IoU). It is a true positive if that IoU >= 0.5 and
   that box is not yet taken; otherwise a false positive, with no fall-back to the next best box.
   Detections on a frame that has no ground truth at all are false positives in the official
   code (it evaluates them against an empty box list); `frames_without_groundtruth="ignore"` drops
   them instead.
6. Per class, all detections are ranked by descending score, precision and recall computed over
   that ranking, and AP is the all-point interpolated area (VOC 2010+: precision made
   non-increasing from the right, summed over the recall steps). mAP is the mean over classes that
   have ground truth; a class with ground truth and no detections has AP 0.

The PySlowFast protocol is the same except for steps 2 and 5 and the tie rule: no cap (all 60
scores of every box are kept); a frame's detections are matched in the order they were appended,
which is box by box and, per box, class by class as PySlowFast's ``get_ava_eval_data`` appends
them, not by score (from a CSV: file order; ``write_detections`` writes PySlowFast's order); on
equal IoU the first ground-truth box in file order is taken (its reader keeps file order and
ignores the person id). Its per-class score arrays are concatenated frame by frame (frames in
order of first appearance) in that appended order before the same unstable sort.

Tie rule. The official ranking is ``np.argsort(scores)[::-1]`` with numpy's default (unstable)
sort over the class's scores concatenated frame by frame, frames in the order they first appear
in the detections file, each frame's detections by descending score (PySlowFast: in appended
order). For equal scores that order is whatever numpy's sort returns for that array; it is not
stable and changes with the numpy version and the CPU's SIMD sort (on this project's machine
even 10 tied values come out unstable). We rebuild the same array in the same order and make the
same call, so tied scores are ranked exactly as the reference code ranks them under the same
numpy. Inside a frame, equal scores of one class keep the official reader's heap order: frames
where that order (or the cap at 50) depends on a tie are replayed row by row with the official
heap rule; every other frame is handled with array operations.

On equal IoU the official code takes the first box in its frame's order: by descending person id
(its reader takes the 8th column as a score, in ground truth too), equal person ids (or none) in
its heap order. We use that order, replaying the heap for the frames where a detection's best
IoU is shared by several boxes.

Boxes outside [0, 1] and inverted detection boxes are scored as both reference evaluators score
them (see `detection.ava.csv_io`, ``box_check="official"``) unless `strict` is set.

Nothing to evaluate is an error (`EvaluationError`), not a NaN mAP: no ground-truth box of a
label-map class left after the exclusions. Per-class results are keyed by class name, which the
label map guarantees unique (`detection.ava.labelmap`), with `FrameMapResult.class_ids` giving
each name's id.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from detection.ava.constants import MAX_DETECTIONS_PER_FRAME
from detection.ava.csv_io import (
    BOX_COLUMNS,
    AvaColumns,
    BoxCheck,
    read_ava_columns,
    read_excluded_timestamps,
)
from detection.ava.labelmap import LabelMap, read_labelmap
from detection.errors import UserError, shorten
from detection.structures.boxes import paired_iou
from detection.utils.atomic import atomic_write

if TYPE_CHECKING:
    import pandas as pd

IOU_THRESHOLD = 0.5

FramesWithoutGroundtruth = Literal["false_positive", "ignore"]
Protocol = Literal["official", "pyslowfast"]
PROTOCOLS: tuple[Protocol, ...] = ("official", "pyslowfast")
"""The protocols `evaluate` knows, the official one first."""


class EvaluationError(UserError, ValueError):
    """The inputs leave nothing to evaluate; the message names the files."""


@dataclass
class FrameMapResult:
    """Frame-mAP and per-class figures. Dicts are keyed by class name as in the label map and
    ordered as the label map; `per_class` and `num_groundtruth` hold only classes with ground
    truth, `num_detections` and `num_true_positives` every class of the label map."""

    mAP: float  # noqa: N815 (the name users know)
    per_class: dict[str, float]
    protocol: Protocol = "official"
    num_groundtruth: dict[str, int] = field(default_factory=dict)
    num_detections: dict[str, int] = field(default_factory=dict)
    num_true_positives: dict[str, int] = field(default_factory=dict)
    class_ids: dict[str, int] = field(default_factory=dict)
    num_frames: int = 0
    """Ground-truth frames evaluated (after exclusions)."""
    num_dropped_by_cap: int = 0
    """Detections of label-map classes dropped by the per-frame cap."""
    num_on_frames_without_groundtruth: int = 0
    """Detections (after the cap) on frames with no ground truth."""

    def to_dict(self) -> dict[str, object]:
        """``{"protocol": str, "mAP": float, "per_class": {name: ap}}``, the JSON written by
        `to_json`."""
        return {"protocol": self.protocol, **self.summary()}

    def summary(self) -> dict[str, object]:
        """``{"mAP": float, "per_class": {name: ap}}`` (class names are unique in a label map)."""
        return {"mAP": self.mAP, "per_class": dict(self.per_class)}

    def to_json(self, path: str | Path) -> None:
        """Write `to_dict` as JSON, atomically (temporary file beside it, then renamed)."""
        _write_json(path, self.to_dict())


def write_results_json(path: str | Path, results: dict[str, FrameMapResult]) -> None:
    """Write ``{protocol: {"mAP", "per_class"}}`` (e.g. from `evaluate_protocols`) as JSON,
    atomically: the layout of a run's metrics.json."""
    _write_json(path, {name: result.summary() for name, result in results.items()})


def _write_json(path: str | Path, doc: dict[str, object]) -> None:
    with atomic_write(path) as f:
        json.dump(doc, f, indent=2, allow_nan=False)
        f.write("\n")


def evaluate(
    labelmap: LabelMap | str | Path,
    groundtruth: pd.DataFrame | str | Path,
    detections: pd.DataFrame | str | Path,
    excluded: Iterable[tuple[str, int]] | str | Path | None = None,
    *,
    protocol: Protocol = "official",
    iou_threshold: float = IOU_THRESHOLD,
    max_detections_per_frame: int | None | Literal["protocol"] = "protocol",
    frames_without_groundtruth: FramesWithoutGroundtruth = "false_positive",
    strict: bool = False,
) -> FrameMapResult:
    """Frame-mAP of `detections` against `groundtruth` under one protocol.

    Args:
        labelmap: the classes to evaluate (a `LabelMap` or a pbtxt path, either dialect).
        groundtruth: a ground-truth CSV path or a frame from ``read_ava_csv(kind="groundtruth")``.
        detections: a detections CSV path or a frame from ``read_ava_csv(kind="detections")``;
            rows in file order (the order matters for ties, and for matching in "pyslowfast").
        excluded: (video_id, timestamp) pairs or an excluded-timestamps CSV path; those frames
            are removed from both sides.
        protocol: "official" (ActivityNet's get_ava_performance.py) or "pyslowfast"
            (PySlowFast's in-memory evaluation, which its model zoo reports).
        iou_threshold: the IoU a match needs (0.5 in both protocols).
        max_detections_per_frame: "protocol" (50 for "official", none for "pyslowfast"), or a
            cap for the official protocol (None: no cap).
        frames_without_groundtruth: "false_positive" (both protocols) or "ignore".
        strict: when reading CSV paths, refuse rows with a box outside [0, 1] or inverted
            (`AvaCsvError`) instead of scoring them as the reference evaluators do, with a
            warning (`detection.ava.csv_io`, ``box_check``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {protocol!r}")
    if max_detections_per_frame == "protocol":
        cap = MAX_DETECTIONS_PER_FRAME if protocol == "official" else None
    elif protocol == "pyslowfast" and max_detections_per_frame is not None:
        raise ValueError("the pyslowfast protocol has no per-frame cap")
    else:
        cap = max_detections_per_frame
    inputs = _Inputs.load(labelmap, groundtruth, detections, excluded, strict)
    return _evaluate(inputs, protocol, cap, iou_threshold, frames_without_groundtruth)


def evaluate_protocols(
    labelmap: LabelMap | str | Path,
    groundtruth: pd.DataFrame | str | Path,
    detections: pd.DataFrame | str | Path,
    excluded: Iterable[tuple[str, int]] | str | Path | None = None,
    *,
    protocols: Iterable[Protocol] = PROTOCOLS,
    frames_without_groundtruth: FramesWithoutGroundtruth = "false_positive",
    strict: bool = False,
) -> dict[str, FrameMapResult]:
    """`evaluate` under each of `protocols` with its own cap, the files read once.

    Returns {protocol: result}, in the order of `protocols`.
    """
    protocols = list(protocols)
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"protocols must be among {list(PROTOCOLS)}, got {unknown}")
    inputs = _Inputs.load(labelmap, groundtruth, detections, excluded, strict)
    return {
        p: _evaluate(
            inputs,
            p,
            MAX_DETECTIONS_PER_FRAME if p == "official" else None,
            IOU_THRESHOLD,
            frames_without_groundtruth,
        )
        for p in protocols
    }


@dataclass
class _Inputs:
    """Both sides as arrays, label-map classes only, excluded ground-truth frames removed.

    Detections (rows in file order): key [N] (one int64 per frame, shared with the ground
    truth), frame_order [N] (frames numbered in order of first appearance), score [N],
    action [N], box [N, 4] (x1, y1, x2, y2). Ground truth: key [G], action [G], box [G, 4],
    person [G] (person id, -1 where absent); frames [F] the distinct ground-truth keys.
    """

    labelmap: LabelMap
    ids: np.ndarray
    excluded_keys: np.ndarray
    det_key: np.ndarray
    det_frame_order: np.ndarray
    det_score: np.ndarray
    det_action: np.ndarray
    det_box: np.ndarray
    gt_key: np.ndarray
    gt_action: np.ndarray
    gt_box: np.ndarray
    gt_person: np.ndarray
    gt_frames: np.ndarray

    @classmethod
    def load(
        cls,
        labelmap: LabelMap | str | Path,
        groundtruth: pd.DataFrame | str | Path,
        detections: pd.DataFrame | str | Path,
        excluded: Iterable[tuple[str, int]] | str | Path | None,
        strict: bool,
    ) -> _Inputs:
        # Files are read as arrays (`read_ava_columns`): pandas is never imported for them,
        # which at tens of thousands of rows costs more than the evaluation.
        box_check: BoxCheck = "strict" if strict else "official"
        if not isinstance(labelmap, LabelMap):
            labelmap = read_labelmap(labelmap)
        source = "the ground truth"
        if isinstance(groundtruth, str | Path):
            source = str(groundtruth)
            gt_table = read_ava_columns(groundtruth, kind="groundtruth", box_check=box_check)
        else:
            gt_table = AvaColumns.from_frame(groundtruth)
        if isinstance(detections, str | Path):
            det_table = read_ava_columns(detections, kind="detections", box_check=box_check)
        else:
            det_table = AvaColumns.from_frame(detections)
        if isinstance(excluded, str | Path):
            excluded = read_excluded_timestamps(excluded)
        excluded = set(excluded or ())

        ids = np.asarray(labelmap.ids, dtype=np.int64)
        gt_action = gt_table.columns["action_id"].astype(np.int64)
        gt_rows = np.flatnonzero(np.isin(gt_action, ids) & ~np.isnan(gt_table.columns["x1"]))
        det_rows = np.flatnonzero(np.isin(det_table.columns["action_id"], ids))
        gt_key, det_key, excluded_keys = _frame_keys(
            gt_table, gt_rows, det_table, det_rows, excluded
        )
        gt_keep = ~np.isin(gt_key, excluded_keys)
        if not gt_keep.any():
            raise EvaluationError(
                _nothing_to_evaluate(
                    labelmap, source, gt_action, gt_table.columns["x1"], len(gt_rows)
                )
            )
        gt_rows = gt_rows[gt_keep]
        person = gt_table.columns.get("person_id")
        det = det_table.columns
        return cls(
            labelmap=labelmap,
            ids=ids,
            excluded_keys=excluded_keys,
            det_key=det_key,
            # Frames in the order the reference readers first meet them: the per-class score
            # arrays are concatenated in that order, which decides how numpy's sort breaks ties.
            det_frame_order=_first_appearance_order(det_key),
            det_score=_take(det["score"], det_rows, np.float64),
            det_action=_take(det["action_id"], det_rows, np.int64),
            det_box=np.column_stack([_take(det[c], det_rows, np.float64) for c in BOX_COLUMNS]),
            gt_key=gt_key[gt_keep],
            gt_action=gt_action[gt_rows],
            gt_box=np.column_stack(
                [_take(gt_table.columns[c], gt_rows, np.float64) for c in BOX_COLUMNS]
            ),
            gt_person=(
                np.full(len(gt_rows), -1, dtype=np.int64)
                if person is None
                else _take(person, gt_rows, np.int64)
            ),
            gt_frames=_distinct(gt_key[gt_keep]),
        )


def _take(column: np.ndarray, rows: np.ndarray, dtype: type) -> np.ndarray:
    """`column[rows]` as `dtype`, without a copy when `rows` are all the rows (the usual case:
    a detector scores only the label map's classes)."""
    column = np.asarray(column, dtype=dtype)
    return column if len(rows) == len(column) else column[rows]


def check_groundtruth(
    labelmap: LabelMap,
    groundtruth: pd.DataFrame,
    excluded: Iterable[tuple[str, int]] = (),
    *,
    source: str = "the ground truth",
) -> None:
    """Raise `EvaluationError` (naming `source`, the ground-truth file) when no ground-truth box
    of a label-map class is left after the exclusions: what `evaluate` refuses, checked without
    detections. `groundtruth` as ``read_ava_csv(kind="groundtruth")`` gives it."""
    import pandas as pd

    of_classes = groundtruth[
        np.isin(groundtruth["action_id"].to_numpy(), labelmap.ids)
        & groundtruth["x1"].notna().to_numpy()
    ]
    frames = pd.MultiIndex.from_arrays([of_classes["video_id"], of_classes["timestamp"]])
    excluded = list(excluded)
    if excluded:
        left = ~frames.isin(excluded)
    else:
        left = np.ones(len(frames), dtype=bool)
    if not left.any():
        raise EvaluationError(
            _nothing_to_evaluate(
                labelmap,
                source,
                groundtruth["action_id"].to_numpy(np.int64),
                groundtruth["x1"].to_numpy(np.float64),
                len(of_classes),
            )
        )


def _nothing_to_evaluate(
    labelmap: LabelMap, source: str, action: np.ndarray, x1: np.ndarray, num_of_classes: int
) -> str:
    """Why no ground-truth box is left to evaluate (`action`, `x1`: [G] the ground truth's
    columns; `num_of_classes`: boxes of label-map classes before the exclusions)."""
    if num_of_classes:
        return f"every ground-truth frame of {source} is excluded: nothing to evaluate"
    with_box = action[~np.isnan(x1)]
    if not with_box.size:
        return f"{source} has no ground-truth box: nothing to evaluate"
    file_ids = shorten(str(sorted(set(with_box.tolist()))))
    map_ids = shorten(str(labelmap.ids))
    return (
        f"no action id of {source} ({file_ids}) is a class of the label map ({map_ids}): "
        "nothing to evaluate"
    )


def _evaluate(
    inputs: _Inputs,
    protocol: Protocol,
    cap: int | None,
    iou_threshold: float,
    frames_without_groundtruth: FramesWithoutGroundtruth,
) -> FrameMapResult:
    if frames_without_groundtruth not in ("false_positive", "ignore"):
        raise ValueError(
            f"frames_without_groundtruth must be 'false_positive' or 'ignore', "
            f"got {frames_without_groundtruth!r}"
        )
    ids = inputs.ids
    # Class index of an action id, for label-map ids only: by a table, or by search where ids
    # are too large for one.
    id_order = np.argsort(ids, kind="stable")
    sorted_ids = ids[id_order]
    table = None
    if int(ids.max(initial=0)) < _MAX_TABLE_ID:
        table = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.int64)
        table[ids] = np.arange(len(ids))

    def class_of_id(actions: np.ndarray) -> np.ndarray:
        if table is not None:
            return table[actions]
        return id_order[np.searchsorted(sorted_ids, actions)]

    det_key, det_frame_order = inputs.det_key, inputs.det_frame_order
    det_score, det_action, det_box = inputs.det_score, inputs.det_action, inputs.det_box
    gt_key, gt_box, gt_action = inputs.gt_key, inputs.gt_box, inputs.gt_action
    gt_class = class_of_id(gt_action)

    if protocol == "official":
        kept, within_rank = _cap_per_frame(det_frame_order, det_score, det_action, det_box, cap)
        # The official reader takes an 8th column as the score, in ground truth too, where it is
        # the person id, and sorts each frame's boxes by it, descending: that order picks the box
        # on equal IoU. Rows without a person id get its default score, 1.
        gt_score = np.where(inputs.gt_person >= 0, inputs.gt_person, 1).astype(np.float64)
        gt_rank = _rank_in_frame(gt_key, gt_score)
    else:
        # PySlowFast keeps every detection, in the order appended (file order), and reads the
        # ground truth in file order.
        kept = _radix_argsort([det_frame_order])
        within_rank = _rank_in_frame(det_frame_order)[kept]
        gt_score = np.ones(len(gt_key))
        gt_rank = _rank_in_frame(gt_key)
    num_dropped_by_cap = len(det_key) - len(kept)

    # Masks over all rows, then one selection: copies of the [N, 4] boxes are what costs memory.
    valid_box = (det_box[:, 0] < det_box[:, 2]) & (det_box[:, 1] < det_box[:, 3])
    kept_key = det_key[kept]
    keep = valid_box[kept] & ~np.isin(kept_key, inputs.excluded_keys)
    on_gt_frame = np.isin(kept_key, inputs.gt_frames)
    num_without_gt = int((keep & ~on_gt_frame).sum())
    if frames_without_groundtruth == "ignore":
        keep &= on_gt_frame
    del kept_key, on_gt_frame
    selected, within_rank = kept[keep], within_rank[keep]
    sel_key, sel_score, sel_box = (a[selected] for a in (det_key, det_score, det_box))
    sel_class = class_of_id(det_action[selected])

    num_classes = len(ids)
    det_group, gt_group = sel_key * num_classes + sel_class, gt_key * num_classes + gt_class
    is_tp, tied_groups = _match(
        det_group, sel_box, within_rank, gt_group, gt_box, gt_rank, iou_threshold
    )
    if protocol == "official" and tied_groups.size:
        # Some detection has the same best IoU with several boxes: which one it takes follows
        # the official reader's heap order of the frame's boxes, so replay those frames.
        gt_rank = gt_rank.copy()
        for frame_key in _distinct(tied_groups // num_classes):
            rows = np.flatnonzero(gt_key == frame_key)
            ordered = _official_heap_order(rows, gt_score, gt_action, gt_box, len(rows))
            gt_rank[ordered] = np.arange(len(ordered))
        is_tp, _ = _match(det_group, sel_box, within_rank, gt_group, gt_box, gt_rank, iou_threshold)

    # Grouped by class, each class in the reference concatenation order: frames in order of
    # first appearance, then rank in the frame, which is the order of `kept`.
    order = _radix_argsort([sel_class])
    class_starts = np.searchsorted(sel_class[order], np.arange(num_classes + 1))
    num_gt = np.bincount(gt_class, minlength=num_classes)

    names = [inputs.labelmap.names[int(i)] for i in ids]
    per_class: dict[str, float] = {}
    num_tp: dict[str, int] = {}
    num_det: dict[str, int] = {}
    for c, name in enumerate(names):
        rows = order[class_starts[c] : class_starts[c + 1]]
        num_det[name] = len(rows)
        num_tp[name] = int(is_tp[rows].sum())
        if num_gt[c]:
            per_class[name] = average_precision(sel_score[rows], is_tp[rows], int(num_gt[c]))
    mean_ap = float(np.mean(list(per_class.values())))
    return FrameMapResult(
        mAP=mean_ap,
        per_class=per_class,
        protocol=protocol,
        num_groundtruth={n: int(num_gt[c]) for c, n in enumerate(names) if num_gt[c]},
        num_detections=num_det,
        num_true_positives=num_tp,
        class_ids={n: int(i) for n, i in zip(names, ids, strict=True)},
        num_frames=len(inputs.gt_frames),
        num_dropped_by_cap=num_dropped_by_cap,
        num_on_frames_without_groundtruth=num_without_gt,
    )


def average_precision(scores: np.ndarray, is_tp: np.ndarray, num_groundtruth: int) -> float:
    """All-point interpolated AP (VOC 2010+) of one class.

    Args:
        scores: [N] detection scores in the official concatenation order (it decides ties).
        is_tp: [N] bool, whether each detection is a true positive.
        num_groundtruth: ground-truth boxes of the class (> 0).
    """
    ranking = np.argsort(scores)[::-1]  # the official call, unstable default sort included
    cum_tp = np.cumsum(is_tp[ranking].astype(np.int64))
    precision = cum_tp / np.arange(1, len(cum_tp) + 1, dtype=np.float64)
    recall = cum_tp / float(num_groundtruth)
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def _frame_keys(
    gt: AvaColumns,
    gt_rows: np.ndarray,
    det: AvaColumns,
    det_rows: np.ndarray,
    excluded: set[tuple[str, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One int64 key per (video_id, timestamp), shared by the ground truth's rows `gt_rows`,
    the detections' rows `det_rows` and the excluded frames: video codes are the detections',
    other videos numbered after them (mapped once per distinct video, not per row)."""
    code = {v: i for i, v in enumerate(det.videos)}
    for v in [*gt.videos, *(v for v, _ in excluded)]:
        code.setdefault(v, len(code))
    gt_video = np.array([code[v] for v in gt.videos], dtype=np.int64)[gt.video[gt_rows]]
    excluded_video = np.array([code[v] for v, _ in excluded], dtype=np.int64)
    timestamps = [
        _take(gt.columns["timestamp"], gt_rows, np.int64),
        _take(det.columns["timestamp"], det_rows, np.int64),
        np.array([t for _, t in excluded], dtype=np.int64),
    ]
    stride = int(max(t.max(initial=0) for t in timestamps)) + 1
    return (
        gt_video * stride + timestamps[0],
        _take(det.video, det_rows, np.int64) * stride + timestamps[1],
        excluded_video * stride + timestamps[2],
    )


def _first_appearance_order(key: np.ndarray) -> np.ndarray:
    """[N] -> [N]: each row's distinct value numbered in order of first appearance.

    Per run of equal values, not per row: files hold a frame's rows together, so there are
    about as many runs as frames, and the sort is over those.
    """
    starts = np.flatnonzero(_run_starts(key))
    values, first, inverse = np.unique(key[starts], return_index=True, return_inverse=True)
    rank = np.empty(len(values), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(values))
    return np.repeat(rank[inverse.reshape(-1)], np.diff(np.r_[starts, len(key)]))


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` without return values imports numpy.ma, which
    costs a small evaluation's start-up)."""
    ordered = np.sort(values)
    return ordered[_run_starts(ordered)]


def _cap_per_frame(
    frame: np.ndarray,
    score: np.ndarray,
    action: np.ndarray,
    box: np.ndarray,
    cap: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the official per-frame cap and order each frame as the official reader does.

    Args:
        frame: [N] frame index of each detection, rows in file order.
        score, action: [N] score and action id; box: [N, 4] (x1, y1, x2, y2).
        cap: detections kept per frame, or None.

    Returns:
        kept: [K] indices of the rows kept, frame by frame (ascending `frame`), each frame in
            the official order.
        within_rank: [K] each kept row's position in its frame's official order.
    """
    n = len(frame)
    # By frame, then descending score. Equal scores may come in any order here: where their
    # order matters (a tie at the cap, or within a class) the frame is replayed below.
    by_score = _by_frame_then_score(frame, score)
    sorted_frame = frame[by_score]
    starts = np.flatnonzero(_run_starts(sorted_frame))
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    limit = n if cap is None else cap

    # The kept set is the top `limit` by score unless the scores at positions limit-1 and limit
    # tie; then which of the tied rows stay depends on the heap, so the frame is replayed.
    sorted_score = score[by_score]
    over = np.flatnonzero(counts > limit)
    boundary_tie = sorted_score[starts[over] + limit - 1] == sorted_score[starts[over] + limit]
    replay = np.zeros(len(starts), dtype=bool)
    replay[over[boundary_tie]] = True

    # Equal scores of one class in one frame keep the heap's order, which decides which of them
    # takes a ground-truth box and feeds the official sort: replay those frames too.
    # Equal scores of a frame are adjacent in `by_score`; only kept rows in such runs can tie.
    run = np.cumsum(_run_starts(sorted_frame) | _run_starts(sorted_score))
    in_tied_run = (np.bincount(run)[run] > 1) & (rank < limit)
    positions = np.flatnonzero(in_tied_run)
    keys = run[positions] * (int(action.max(initial=0)) + 1) + action[by_score[positions]]
    order = np.argsort(keys, kind="stable")
    repeated = positions[order][1:][keys[order][1:] == keys[order][:-1]]
    replay[np.searchsorted(starts, repeated, side="right") - 1] = True

    rank_of_row = np.full(n, -1, dtype=np.int64)
    plain_rows = ~np.repeat(replay, counts) & (rank < limit)
    rank_of_row[by_score[plain_rows]] = rank[plain_rows]
    for s_start, s_count in zip(starts[replay], counts[replay], strict=True):
        rows = np.sort(by_score[s_start : s_start + s_count])  # file order
        ordered = _official_heap_order(rows, score, action, box, limit)
        rank_of_row[ordered] = np.arange(len(ordered))
    # Kept rows listed frame by frame (frames in ascending `frame`), each frame in its official
    # order: placed by rank, since replayed frames are not in `by_score`'s order.
    kept_count = np.minimum(counts, limit)
    offset = np.repeat(np.cumsum(kept_count) - kept_count, kept_count)
    rows = by_score[rank_of_row[by_score] >= 0]
    within_rank = rank_of_row[rows]
    kept = np.empty(len(rows), dtype=np.int64)
    kept[offset + within_rank] = rows
    return kept, np.arange(len(rows)) - offset


def _by_frame_then_score(frame: np.ndarray, score: np.ndarray) -> np.ndarray:
    """[N] -> [N] the rows ordered by ascending `frame` (non-negative ints), then descending
    `score`, equal scores of a frame in any order.

    One float sort of ``2 * frame + (1 - score)`` does it when scores lie in [0, 1] and those of
    a frame differ by more than the key's round-off (~1e-11 at 50,000 frames), as detector
    scores do. The result is checked, and otherwise two sorts do it exactly: by score, then a
    stable one by frame.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        order = np.argsort(2.0 * frame + (1.0 - score))
    sorted_frame, sorted_score = frame[order], score[order]
    same_frame = sorted_frame[1:] == sorted_frame[:-1]
    if (sorted_frame[1:] >= sorted_frame[:-1]).all() and not (
        same_frame & (sorted_score[1:] > sorted_score[:-1])
    ).any():
        return order
    order = np.argsort(-score)
    return order[_radix_argsort([frame[order]])]


def _official_heap_order(
    rows: np.ndarray, score: np.ndarray, action: np.ndarray, box: np.ndarray, cap: int
) -> list[int]:
    """Replay the official reader on one frame: a min-heap of (score, action, y1, x1, y2, x2)
    entries, a row entering a full heap only if its score beats the smallest, then a stable sort
    by descending score over the heap's list order. Returns the kept rows in that order.

    The entries must be exactly the official tuples: anything extra (say a row index) would
    change which of two equal children the heap moves and so the order. Equal entries are the
    same detection twice, so mapping them back to any of their rows gives the same result.
    """
    heap: list[tuple[float, int, float, float, float, float]] = []
    rows_of: dict[tuple[float, int, float, float, float, float], list[int]] = {}
    for row in rows.tolist():
        x1, y1, x2, y2 = box[row].tolist()
        entry = (float(score[row]), int(action[row]), y1, x1, y2, x2)
        rows_of.setdefault(entry, []).append(row)
        if len(heap) < cap:
            heapq.heappush(heap, entry)
        elif entry[0] > heap[0][0]:
            heapq.heapreplace(heap, entry)
    return [rows_of[entry].pop() for entry in sorted(heap, key=lambda e: -e[0])]


def _match(
    det_group: np.ndarray,
    det_box: np.ndarray,
    det_rank: np.ndarray,
    gt_group: np.ndarray,
    gt_box: np.ndarray,
    gt_rank: np.ndarray,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy official matching, all frames and classes at once.

    Args:
        det_group, gt_group: [D], [G] one int per (frame, class).
        det_box, gt_box: [D, 4], [G, 4] boxes (x1, y1, x2, y2).
        det_rank, gt_rank: [D], [G] position in the frame's official order; on equal IoU the
            box with the lowest rank is taken.

    Returns:
        is_tp: [D] bool, true positives.
        tied_groups: the groups where a detection's best IoU (>= threshold) is shared by
            several boxes, so that `gt_rank` decides.

    Each detection takes the highest-IoU box of its group. A box can be claimed only by
    detections that pick it as their best with IoU >= threshold, and the earliest of them in the
    frame's order wins, because a later one would find it taken and has no fall-back: so the
    sequential loop reduces to "first claimant per box".
    """
    num_det = len(det_group)
    gt_order = np.lexsort((gt_rank, gt_group))
    sorted_groups = gt_group[gt_order]
    # Each detection's boxes: one search among the distinct groups (not two among all boxes).
    group_start = np.flatnonzero(_run_starts(sorted_groups))
    groups = sorted_groups[group_start]
    group_size = np.diff(np.r_[group_start, len(sorted_groups)])
    found = np.minimum(np.searchsorted(groups, det_group), max(len(groups) - 1, 0))
    if len(groups):
        first = group_start[found]
        count = np.where(groups[found] == det_group, group_size[found], 0)
    else:
        first = count = np.zeros(num_det, dtype=np.int64)
    total = int(count.sum())
    pair_det = np.repeat(np.arange(num_det), count)
    pair_start = np.cumsum(count) - count
    pair_gt = gt_order[np.repeat(first, count) + np.arange(total) - np.repeat(pair_start, count)]
    iou = paired_iou(det_box[pair_det], gt_box[pair_gt])

    best_iou = np.full(num_det, -np.inf)
    has_gt = count > 0
    if total:
        best_iou[has_gt] = np.maximum.reduceat(iou, pair_start[has_gt])
    at_best = np.flatnonzero(iou == best_iou[pair_det])
    first_best = at_best[_run_starts(pair_det[at_best])]
    best_gt = np.full(num_det, -1, dtype=np.int64)
    best_gt[pair_det[first_best]] = pair_gt[first_best]
    shared_best = np.bincount(pair_det[at_best], minlength=num_det) > 1

    claimants = np.flatnonzero(best_iou >= iou_threshold)
    claimants = claimants[np.lexsort((det_rank[claimants], best_gt[claimants]))]
    claimed = best_gt[claimants]
    winners = claimants[_run_starts(claimed)]
    is_tp = np.zeros(num_det, dtype=bool)
    is_tp[winners] = True
    return is_tp, det_group[shared_best & (best_iou >= iou_threshold)]


def _rank_in_frame(frame: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
    """[N] each row's position in its frame by descending score, equal scores in file order
    (the official order wherever scores differ); without `score`, in file order."""
    if score is None:
        order = _radix_argsort([frame])
    else:
        order = np.lexsort((np.arange(len(frame)), -score, frame))
    sorted_frame = frame[order]
    starts = np.flatnonzero(_run_starts(sorted_frame))
    rank = np.empty(len(frame), dtype=np.int64)
    rank[order] = np.arange(len(frame)) - np.repeat(starts, np.diff(np.r_[starts, len(frame)]))
    return rank


def _run_starts(values: np.ndarray) -> np.ndarray:
    """[N] -> [N] bool: True where a run of equal values begins."""
    starts = np.ones(len(values), dtype=bool)
    starts[1:] = values[1:] != values[:-1]
    return starts


_MAX_TABLE_ID = 1 << 20
"""Action ids below this are mapped to classes by a lookup table (AVA's go to 80)."""


def _radix_argsort(keys: list[np.ndarray]) -> np.ndarray:
    """Stable argsort by several non-negative integer keys, the last one most significant.

    Least-significant-digit radix sort in 16-bit digits: numpy sorts 16-bit keys stably in
    linear time (radix sort), while int64 keys go to a comparison sort several times slower.
    """
    order: np.ndarray | None = None
    for key in keys:
        top = int(key.max(initial=0))
        shift = 0
        while True:
            in_order = key if order is None else key[order]
            digits = ((in_order >> shift) & 0xFFFF).astype(np.uint16)
            step = np.argsort(digits, kind="stable")
            order = step if order is None else order[step]
            shift += 16
            if top >> shift == 0:
                break
    return np.arange(0) if order is None else order
