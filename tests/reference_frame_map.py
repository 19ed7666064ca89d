"""A per-frame loop reference of the official AVA frame-mAP evaluator, and generated AVA-like
files to compare evaluators on (a plain module, not a test file: tests/test_frame_map.py and
benchmarks/eval_speed.py import it).

`reference_evaluate` follows the official ActivityNet evaluator (get_ava_performance.py with
object_detection_evaluation / per_image_evaluation / metrics) step by step, in plain loops: a
csv.reader, a heap of 50 per frame, then frame by frame and class by class an IoU matrix, argmax
and a greedy loop, and per class ``np.argsort(scores)[::-1]``. The official evaluator itself is
not installable here; this loop is the stand-in for it.
"""

from __future__ import annotations

import csv
import heapq
from collections import defaultdict
from pathlib import Path

import numpy as np

from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import ALL_CLASSES, EVALUATED_CLASSES, packaged_labelmap_path

EVAL_LABELMAP = packaged_labelmap_path(EVALUATED_CLASSES)
FULL_LABELMAP = packaged_labelmap_path(ALL_CLASSES)


def _reference_read(path: Path, class_ids: set[int], capacity: int) -> dict:
    """The official reader: rows of other classes skipped, a min-heap of `capacity` entries per
    frame (0: no limit), then each frame's entries by descending score (stable sort)."""
    entries: dict[tuple[str, int], list] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.reader(f):
            key = (row[0], int(row[1]))
            x1, y1, x2, y2 = (float(v) for v in row[2:6])
            action = int(row[6])
            if action not in class_ids:
                continue
            # An 8th column is read as the score even in ground truth, where it is the person
            # id: the official reader does that too, and it orders each frame's boxes.
            score = float(row[7]) if len(row) == 8 else 1.0
            heap = entries[key]
            if capacity < 1 or len(heap) < capacity:
                heapq.heappush(heap, (score, action, y1, x1, y2, x2))
            elif score > heap[0][0]:
                heapq.heapreplace(heap, (score, action, y1, x1, y2, x2))
    frames = {}
    for key, heap in entries.items():
        ordered = sorted(heap, key=lambda e: -e[0])
        frames[key] = (
            np.array([e[2:] for e in ordered], dtype=float).reshape(-1, 4),  # y1, x1, y2, x2
            np.array([e[1] for e in ordered], dtype=int),
            np.array([e[0] for e in ordered], dtype=float),
        )
    return frames


def _reference_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] (y1, x1, y2, x2) -> [N, M], no +1."""
    heights = np.maximum(
        0.0,
        np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
        - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0]),
    )
    widths = np.maximum(
        0.0,
        np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
        - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1]),
    )
    intersection = heights * widths
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return intersection / (area1[:, None] + area2[None, :] - intersection)


def _reference_ap(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    ranking = np.argsort(scores)[::-1]
    tp = is_tp[ranking].astype(int)
    cum_tp = np.cumsum(tp)
    cum_fp = np.cumsum(1 - tp)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    if not precision.size:
        return 0.0
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    steps = np.where(recall[1:] != recall[:-1])[0] + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


def reference_evaluate(
    labelmap_path: Path,
    groundtruth_path: Path,
    detections_path: Path,
    excluded_path: Path | None = None,
    *,
    ignore_frames_without_groundtruth: bool = False,
) -> tuple[float, dict[int, float]]:
    """The official protocol in per-frame, per-class, per-box loops.

    Returns (mAP, {action id: AP}) for the classes with ground truth.
    """
    class_ids = set(read_labelmap(labelmap_path).ids)
    num_classes = max(class_ids)
    excluded = set()
    if excluded_path is not None:
        with open(excluded_path, newline="") as f:
            excluded = {(row[0], int(row[1])) for row in csv.reader(f)}

    groundtruth = {}
    num_gt = np.zeros(num_classes + 1, dtype=int)
    for key, (boxes, labels, _) in _reference_read(groundtruth_path, class_ids, 0).items():
        if key in excluded:
            continue
        groundtruth[key] = (boxes, labels)
        for c in range(1, num_classes + 1):
            num_gt[c] += int(np.sum(labels == c))

    scores_per_class = defaultdict(list)
    tp_per_class = defaultdict(list)
    for key, (boxes, labels, scores) in _reference_read(detections_path, class_ids, 50).items():
        if key in excluded:
            continue
        if ignore_frames_without_groundtruth and key not in groundtruth:
            continue
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        boxes, labels, scores = boxes[valid], labels[valid], scores[valid]
        gt_boxes, gt_labels = groundtruth.get(key, (np.zeros((0, 4)), np.zeros(0, dtype=int)))
        for c in range(1, num_classes + 1):
            det_boxes = boxes[labels == c]
            if not len(det_boxes):
                continue
            class_gt = gt_boxes[gt_labels == c]
            is_tp = np.zeros(len(det_boxes), dtype=bool)
            if len(class_gt):
                iou = _reference_iou(det_boxes, class_gt)
                best = np.argmax(iou, axis=1)
                taken = np.zeros(len(class_gt), dtype=bool)
                for i in range(len(det_boxes)):
                    if iou[i, best[i]] >= 0.5 and not taken[best[i]]:
                        is_tp[i] = True
                        taken[best[i]] = True
            scores_per_class[c].append(scores[labels == c])
            tp_per_class[c].append(is_tp)

    per_class = {}
    for c in range(1, num_classes + 1):
        if num_gt[c] == 0:
            continue
        scores = np.concatenate(scores_per_class[c]) if scores_per_class[c] else np.zeros(0)
        is_tp = np.concatenate(tp_per_class[c]) if tp_per_class[c] else np.zeros(0, dtype=bool)
        per_class[c] = _reference_ap(scores, is_tp, int(num_gt[c]))
    return float(np.mean(list(per_class.values()))), per_class


def generate_ava_like(
    folder: Path,
    *,
    num_videos: int = 64,
    frames_per_video: int = 897,
    persons_per_frame: float = 1.0,
    classes_per_box: int = 20,
    seed: int = 0,
) -> tuple[Path, Path, Path]:
    """Write groundtruth.csv (with person ids, all 80 classes, long-tailed like AVA),
    detections.csv (each ground-truth person found with a jittered box, plus false boxes; each
    box scored for `classes_per_box` classes, its true ones scored higher) and excluded.csv.
    Returns the three paths."""
    rng = np.random.default_rng(seed)
    class_ids = np.array(read_labelmap(FULL_LABELMAP).ids)
    popularity = 1.0 / np.arange(1, len(class_ids) + 1) ** 1.1  # long tail, like AVA
    popularity = rng.permutation(popularity / popularity.sum())

    videos = [f"vid{v:08d}_x" for v in range(num_videos)]
    gt_rows, det_rows = [], []
    for video in videos:
        persons = rng.poisson(persons_per_frame, frames_per_video)
        for frame, count in enumerate(persons):
            timestamp = 902 + frame
            boxes = _random_boxes(rng, count)
            for person, box in enumerate(boxes):
                labels = rng.choice(
                    class_ids, size=1 + rng.poisson(0.6), replace=False, p=popularity
                )
                gt_rows += [(video, timestamp, *box, a, person) for a in labels]
                det_rows += _scored_rows(
                    rng, video, timestamp, _jitter(rng, box), labels, class_ids, classes_per_box
                )
            for box in _random_boxes(rng, rng.poisson(0.4)):  # false boxes, also on empty frames
                det_rows += _scored_rows(rng, video, timestamp, box, [], class_ids, classes_per_box)

    groundtruth = folder / "groundtruth.csv"
    groundtruth.write_text(
        "".join(
            f"{v},{t:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{a},{p}\n"
            for v, t, x1, y1, x2, y2, a, p in gt_rows
        )
    )
    detections = folder / "detections.csv"
    detections.write_text(
        "".join(
            f"{v},{t:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{a},{s:.6f}\n"
            for v, t, x1, y1, x2, y2, a, s in det_rows
        )
    )
    excluded = folder / "excluded.csv"
    picks = rng.choice(num_videos * frames_per_video, size=40, replace=False)
    excluded.write_text(
        "".join(
            f"{videos[i // frames_per_video]},{902 + i % frames_per_video:04d}\n" for i in picks
        )
    )
    return groundtruth, detections, excluded


def _random_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    corner = rng.uniform(0.0, 0.7, (count, 2))
    size = rng.uniform(0.1, 0.3, (count, 2))
    return np.round(np.clip(np.hstack([corner, corner + size]), 0.0, 1.0), 3)


def _jitter(rng: np.random.Generator, box: np.ndarray) -> np.ndarray:
    moved = box + rng.normal(0.0, 0.03, 4)
    moved = np.clip(moved, 0.0, 1.0)
    return np.round(
        np.hstack([np.minimum(moved[:2], moved[2:]), np.maximum(moved[:2], moved[2:])]), 3
    )


def _scored_rows(rng, video, timestamp, box, labels, class_ids, classes_per_box) -> list:
    others = rng.choice(
        np.setdiff1d(class_ids, labels), classes_per_box - len(labels), replace=False
    )
    scores = np.concatenate([rng.beta(4, 2, len(labels)), rng.beta(1, 6, len(others))])
    return [
        (video, timestamp, *box, a, s)
        for a, s in zip(
            np.concatenate([np.asarray(labels, dtype=np.int64), others]).tolist(),
            scores.tolist(),
            strict=True,
        )
    ]
