"""Identity quality of the person tracker, and whether smoothing scores along tracks helps.

Tracking. Generated scenes of people who cross and hide each other
(`detection.data.synthetic.make_crossing_scene`: 8 people, 30 s, 320x180) give ground-truth
identities; the tracker sees, on each keyframe only, the ground-truth boxes with noise
(`noisy_detections`: 5% jitter, 10% dropped, none under 30% visible, a false positive on one
keyframe in 5). Each tracker runs at several keyframe rates; motmetrics scores its output
(detections and coasting boxes) against the persons at least 30% visible at those keyframes
(IoU >= 0.5): IDF1, identity switches and MOTA, summed over the scenes. The scenes' seeds
(10-19 by default) differ from those the defaults were chosen on (0-5).

Rows: `PersonTracker` with SORT (default), with SORT and no coasting, with ByteTrack (both
from the `trackers` package), and supervision's deprecated `sv.ByteTrack` fed the same way
(when the installed supervision still has it, i.e. < 0.31).

Smoothing. On the same scenes at 1 keyframe per second, each tracked box that matches a
person gets action scores drawn around 0.65 for the actions the person does and 0.35 for
the others (normal, sd --score-noise), boxes of no person around 0.35; frame-mAP (official
protocol, `detection.evaluation.frame_map`) of those scores as they are and after
`smooth_track_scores` with windows 3 and 5.

Prints two tables; writes nothing but temporary files.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import motmetrics as mm  # noqa: E402
import supervision as sv  # noqa: E402

from detection.ava.labelmap import LabelMap  # noqa: E402
from detection.data.synthetic import (  # noqa: E402
    CROSSING_ACTIONS,
    CrossingScene,
    make_crossing_scene,
    noisy_detections,
)
from detection.engine.segments import smooth_track_scores  # noqa: E402
from detection.evaluation.frame_map import evaluate  # noqa: E402
from detection.person.base import PersonDetections  # noqa: E402
from detection.person.tracking import PersonTracker, TrackedPersons  # noqa: E402
from detection.structures.boxes import pairwise_iou  # noqa: E402

MIN_VISIBILITY = 0.3

# A tracker as the benchmark drives it: (detections, time) -> (boxes [N, 4], ids [N]).
Step = Callable[[PersonDetections, float], tuple[np.ndarray, np.ndarray]]


def _person_tracker(rate: float, **options) -> Step:
    tracker = PersonTracker(fps=rate, **options)

    def step(dets: PersonDetections, t: float) -> tuple[np.ndarray, np.ndarray]:
        out = tracker.update(dets, t)
        return out.boxes, out.track_ids

    return step


def _sv_bytetrack(rate: float, lost_track_s: float = 5.0) -> Step:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker = sv.ByteTrack(
            lost_track_buffer=int(np.ceil(lost_track_s * rate)) + 1,
            frame_rate=30,
            minimum_consecutive_frames=1,
        )

    def step(dets: PersonDetections, t: float) -> tuple[np.ndarray, np.ndarray]:
        out = tracker.update_with_detections(
            sv.Detections(
                xyxy=dets.boxes, confidence=dets.scores, class_id=np.zeros(len(dets), int)
            )
        )
        return out.xyxy.reshape(-1, 4), np.asarray(out.tracker_id, np.int64)

    return step


TRACKERS: dict[str, Callable[[float], Step]] = {
    "sort (default)": lambda rate: _person_tracker(rate),
    "sort, no coasting": lambda rate: _person_tracker(rate, coast_keyframes=0),
    "bytetrack (trackers)": lambda rate: _person_tracker(rate, algorithm="bytetrack"),
}
if hasattr(sv, "ByteTrack"):
    TRACKERS["sv.ByteTrack (supervision)"] = _sv_bytetrack


def keyframe_times(scene: CrossingScene, rate: float) -> np.ndarray:
    """Keyframes at (k + 0.5) / rate: mid-period, as a video's keyframes sit mid-clip."""
    return (np.arange(int(scene.duration_s * rate)) + 0.5) / rate


def visible_persons(scene: CrossingScene, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(ids [M], boxes [M, 4]) of the persons at least MIN_VISIBILITY visible at `t`."""
    ids, boxes, visibility = scene.boxes_at(t)
    keep = visibility >= MIN_VISIBILITY
    return ids[keep], boxes[keep]


def _distances(gt_boxes: np.ndarray, hyp_boxes: np.ndarray) -> np.ndarray:
    # motmetrics' own iou_matrix uses np.asfarray, gone in numpy 2: same distances by hand.
    iou = pairwise_iou(gt_boxes, np.asarray(hyp_boxes).reshape(-1, 4))
    return np.where(iou >= 0.5, 1.0 - iou, np.nan)


def identity_metrics(
    scenes: list[CrossingScene], make_step: Callable[[float], Step], rate: float, seed: int
) -> dict[str, float]:
    """IDF1, ID switches and MOTA of one tracker over `scenes` at `rate` keyframes/s."""
    accumulators = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng(seed + i)
        step = make_step(rate)
        acc = mm.MOTAccumulator(auto_id=True)
        for t in keyframe_times(scene, rate):
            boxes, scores, _ = noisy_detections(scene, float(t), rng)
            hyp_boxes, hyp_ids = step(PersonDetections(boxes, scores), float(t))
            gt_ids, gt_boxes = visible_persons(scene, float(t))
            acc.update(
                gt_ids.tolist(), np.asarray(hyp_ids).tolist(), _distances(gt_boxes, hyp_boxes)
            )
        accumulators.append(acc)
    summary = mm.metrics.create().compute_many(
        accumulators, metrics=["idf1", "num_switches", "mota"], generate_overall=True
    )
    overall = summary.loc["OVERALL"]
    return {
        "idf1": float(overall["idf1"]),
        "idsw": int(overall["num_switches"]),
        "mota": float(overall["mota"]),
    }


def smoothing_map(
    scenes: list[CrossingScene], windows: list[int], noise: float, seed: int
) -> dict[int, float]:
    """Frame-mAP of generated action scores on tracked boxes, per smoothing window."""
    labelmap = LabelMap(dict(CROSSING_ACTIONS))
    num_classes = len(CROSSING_ACTIONS)
    gt_rows: list[str] = []
    # Per scene: keyframe times, tracked persons, raw scores.
    runs: list[tuple[str, CrossingScene, list[float], list[TrackedPersons], list[np.ndarray]]] = []
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng(seed + i)
        video = f"cross_{i:02d}"
        tracker = PersonTracker(fps=1.0)
        # Integer seconds: AVA frames are keyed by whole-second timestamps.
        times = [float(t) for t in range(1, int(scene.duration_s))]
        tracked, scores = [], []
        for t in times:
            boxes, det_scores, _ = noisy_detections(scene, t, rng)
            out = tracker.update(PersonDetections(boxes, det_scores), t)
            gt_ids, gt_boxes = visible_persons(scene, t)
            walkers = {w.person_id: w for w in scene.walkers}
            for pid, box in zip(gt_ids, gt_boxes, strict=True):
                gt_rows += [
                    _row(video, t, box, scene, action, f"{int(pid)}")
                    for action in walkers[int(pid)].doing(t)
                ]
            iou = pairwise_iou(out.boxes, gt_boxes)
            truth = np.zeros((len(out), num_classes))
            for row in range(len(out)):
                if iou.shape[1] and iou[row].max() >= 0.5:
                    for action in walkers[int(gt_ids[iou[row].argmax()])].doing(t):
                        truth[row, action - 1] = 1
            raw = np.where(truth > 0, 0.65, 0.35) + rng.normal(0, noise, truth.shape)
            tracked.append(out)
            scores.append(raw.clip(0, 1).astype(np.float32))
        runs.append((video, scene, times, tracked, scores))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.csv"
        gt_path.write_text("".join(gt_rows))
        for window in windows:
            det_rows = []
            for video, scene, times, tracked, scores in runs:
                smoothed = smooth_track_scores(
                    times, [t.track_ids for t in tracked], scores, smoothing=window
                )
                for t, out, rows in zip(times, tracked, smoothed, strict=True):
                    for box, row in zip(out.boxes, rows, strict=True):
                        det_rows += [
                            _row(video, t, box, scene, c + 1, f"{row[c]:.6f}")
                            for c in range(num_classes)
                        ]
            det_path = Path(tmp) / f"det_{window}.csv"
            det_path.write_text("".join(det_rows))
            results[window] = evaluate(labelmap, gt_path, det_path).mAP
    return results


def _row(video: str, t: float, box: np.ndarray, scene: CrossingScene, action: int, last: str):
    x1, y1, x2, y2 = (
        np.asarray(box, np.float64) / [scene.width, scene.height, scene.width, scene.height]
    ).clip(0, 1)
    return f"{video},{int(t):04d},{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},{action},{last}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=10)
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    parser.add_argument("--windows", type=int, nargs="+", default=[0, 3, 5])
    parser.add_argument("--score-noise", type=float, default=0.15)
    args = parser.parse_args(argv)
    scenes = [
        make_crossing_scene(num_people=args.people, duration_s=args.seconds, seed=seed)
        for seed in range(args.first_seed, args.first_seed + args.scenes)
    ]
    print(
        f"{args.scenes} scenes (seeds {args.first_seed}-{args.first_seed + args.scenes - 1}), "
        f"{args.people} people, {args.seconds:g} s each\n"
    )
    print(f"| {'tracker':28s} | keyframes/s | IDF1  | IDsw | MOTA  | s/scene |")
    print(f"|{'-' * 30}|-------------|-------|------|-------|---------|")
    for name, make_step in TRACKERS.items():
        for rate in args.rates:
            start = time.perf_counter()
            m = identity_metrics(scenes, make_step, rate, seed=1000)
            per_scene = (time.perf_counter() - start) / len(scenes)
            print(
                f"| {name:28s} | {rate:11g} | {m['idf1']:.3f} | {m['idsw']:4d} | "
                f"{m['mota']:.3f} | {per_scene:7.2f} |",
                flush=True,
            )
    print("\n| smoothing window | frame-mAP |")
    print("|------------------|-----------|")
    for window, value in smoothing_map(scenes, args.windows, args.score_noise, 2000).items():
        print(f"| {window if window > 1 else 'off':>16} | {value:.4f}    |")


if __name__ == "__main__":
    main()
