"""Person-box AP: a person detector's boxes against AVA's ground-truth person boxes, scored with
pycocotools' COCOeval (the paper reports 93.9 AP@50 for its detector on AVA val).

Each keyframe (video_id, timestamp) with ground truth is one image. Ground-truth persons are the
unique boxes of the frame (the ground truth repeats a person's box once per action). Detection
rows repeated per action are also reduced to one per (frame, box, score). Detections on frames
without ground truth are not scored (COCOeval only scores the images it is given), and frames
in the excluded timestamps are dropped from both sides. Boxes stay normalized; COCOeval's IoU
has no +1, so the scale does not matter, and only its "all" area range is used.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detection.ava.csv_io import BOX_COLUMNS, read_ava_csv, read_excluded_timestamps

SCORE_THRESHOLD = 0.8
"""The person-score cut the AVA configs use (AVA.DETECTION_SCORE_THRESH)."""

COCO_MAX_DETECTIONS = 100
"""COCOeval's largest maxDets (detections per image it scores); not AVA's 50-per-frame cap."""


@dataclass(frozen=True)
class PersonApResult:
    """COCO-style figures for person boxes; AP and recall in [0, 1]."""

    ap50: float
    """AP at IoU 0.5 (101-point interpolated, as COCOeval)."""
    ap: float
    """AP averaged over IoU 0.50:0.05:0.95."""
    recall50_at_threshold: float
    """Fraction of ground-truth persons matched at IoU 0.5 by detections scoring at least
    `score_threshold`."""
    score_threshold: float
    num_groundtruth: int
    num_detections: int
    num_frames: int


def evaluate_person_boxes(
    groundtruth: pd.DataFrame | str | Path,
    detections: pd.DataFrame | str | Path,
    excluded: Iterable[tuple[str, int]] | str | Path | None = None,
    *,
    score_threshold: float = SCORE_THRESHOLD,
) -> PersonApResult:
    """Score person boxes against ground-truth person boxes.

    Args:
        groundtruth: AVA ground truth (path or ``read_ava_csv(kind="groundtruth")`` frame).
        detections: person boxes with scores (path or ``read_ava_csv(kind="boxes")`` frame;
            a detections file works too); rows without a score count as score 1.
        excluded: (video_id, timestamp) pairs or an excluded-timestamps CSV path.
        score_threshold: the cut for `PersonApResult.recall50_at_threshold`.
    """
    if not isinstance(groundtruth, pd.DataFrame):
        groundtruth = read_ava_csv(groundtruth, kind="groundtruth")
    if not isinstance(detections, pd.DataFrame):
        detections = read_ava_csv(detections, kind="boxes")
    if isinstance(excluded, str | Path):
        excluded = read_excluded_timestamps(excluded)
    excluded_frames = pd.MultiIndex.from_tuples(
        list(excluded or ()), names=["video_id", "timestamp"]
    )

    gt = groundtruth.dropna(subset=BOX_COLUMNS)
    gt = gt.drop_duplicates(subset=["video_id", "timestamp", *BOX_COLUMNS])
    gt = gt[~_frame_index(gt).isin(excluded_frames)]
    frames = pd.MultiIndex.from_frame(gt[["video_id", "timestamp"]].drop_duplicates())
    image_of = pd.Series(np.arange(1, len(frames) + 1), index=frames)

    scores = detections["score"].fillna(1.0) if "score" in detections else 1.0
    det = detections.assign(score=scores)
    det = det.drop_duplicates(subset=["video_id", "timestamp", *BOX_COLUMNS, "score"])
    det = det[_frame_index(det).isin(frames)]

    coco_gt = COCO()
    coco_gt.dataset = {
        "images": [{"id": int(i), "width": 1, "height": 1} for i in image_of.to_numpy()],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": n + 1,
                "image_id": int(image),
                "category_id": 1,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            for n, (image, box) in enumerate(
                zip(image_of.loc[_frame_index(gt)].to_numpy().tolist(), _xywh(gt), strict=True)
            )
        ],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt.createIndex()
    result = PersonApResult(
        ap50=0.0,
        ap=0.0,
        recall50_at_threshold=0.0,
        score_threshold=score_threshold,
        num_groundtruth=len(gt),
        num_detections=len(det),
        num_frames=len(frames),
    )
    if not len(gt) or not len(det):
        return result

    detections_json = [
        {"image_id": int(image), "category_id": 1, "bbox": box, "score": float(score)}
        for image, box, score in zip(
            image_of.loc[_frame_index(det)].to_numpy().tolist(),
            _xywh(det),
            det["score"].tolist(),
            strict=True,
        )
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_det = coco_gt.loadRes(detections_json)
        evaluator = COCOeval(coco_gt, coco_det, iouType="bbox")
        evaluator.params.maxDets = [1, 10, COCO_MAX_DETECTIONS]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return PersonApResult(
        ap50=float(evaluator.stats[1]),
        ap=float(evaluator.stats[0]),
        recall50_at_threshold=_recall_at(evaluator, score_threshold, len(gt)),
        score_threshold=score_threshold,
        num_groundtruth=len(gt),
        num_detections=len(det),
        num_frames=len(frames),
    )


def _frame_index(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays(
        [frame["video_id"], frame["timestamp"]], names=["video_id", "timestamp"]
    )


def _xywh(frame: pd.DataFrame) -> list[list[float]]:
    boxes = frame[BOX_COLUMNS].to_numpy(np.float64)
    return np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).tolist()


def _recall_at(evaluator: COCOeval, threshold: float, num_groundtruth: int) -> float:
    """Ground-truth boxes matched at IoU 0.5 by detections scoring >= threshold. COCOeval
    matches greedily by descending score, so the matches of the detections above the cut are
    the same as if the ones below had never been given."""
    matched = 0
    for image in evaluator.evalImgs:
        # evalImgs holds one entry per (category, area range, image); area range 0 is "all".
        if image is None or image["aRng"] != evaluator.params.areaRng[0]:
            continue
        scores = np.asarray(image["dtScores"])
        matched += int(((image["dtMatches"][0] > 0) & (scores >= threshold)).sum())
    return matched / num_groundtruth
