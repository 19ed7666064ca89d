import motmetrics as mm
import numpy as np
import pytest

from detection.data.synthetic import CrossingScene, Walker, make_crossing_scene, noisy_detections
from detection.person.base import PersonDetections
from detection.person.tracking import PersonTracker, TrackedPersons, interpolate_track_boxes
from detection.structures.boxes import pairwise_iou


def _walker(pid: int, x: float, vx: float, y: float = 150.0, start_s: float = 0.0) -> Walker:
    return Walker(pid, 30.0, 75.0, (200, 80, 80), (x, y), (vx, 0.0), start_s, 100.0, ())


def _two_crossing() -> CrossingScene:
    # Opposite directions at 0.4 widths/s on nearby lanes: they meet near t = 10 s.
    return CrossingScene(
        (_walker(1, 40.0, 12.0, y=150.0), _walker(2, 280.0, -12.0, y=140.0)), 320, 180, 20, 30, 0
    )


def _detections(scene: CrossingScene, t: float) -> tuple[PersonDetections, np.ndarray]:
    ids, boxes, visibility = scene.boxes_at(t)
    keep = visibility >= 0.3
    scores = np.linspace(0.95, 0.9, int(keep.sum())).astype(np.float32)
    return PersonDetections(boxes[keep], scores), ids[keep]


def test_ids_stay_with_people_who_cross_at_one_keyframe_per_second():
    scene = _two_crossing()
    tracker = PersonTracker(fps=1.0)
    owner: dict[int, set[int]] = {1: set(), 2: set()}
    for t in np.arange(0.5, 20, 1.0):
        dets, person_ids = _detections(scene, float(t))
        out = tracker.update(dets, float(t))
        assert out.track_ids.dtype == np.int64 and out.boxes.dtype == np.float32
        for track_id, index in zip(out.track_ids, out.detection_index, strict=True):
            if index >= 0:
                owner[int(person_ids[index])].add(int(track_id))
    assert owner[1] == {1} and owner[2] == {2}


def test_a_missed_detection_coasts_on_the_predicted_box_and_keeps_its_id():
    scene = CrossingScene((_walker(1, 40.0, 10.0),), 320, 180, 20, 30, 0)
    tracker = PersonTracker(fps=1.0, coast_keyframes=1)
    for t in (0.5, 1.5, 2.5, 3.5):
        out = tracker.update(_detections(scene, t)[0], t)
    assert out.track_ids.tolist() == [1]
    coasting = tracker.update(PersonDetections.empty(), 4.5)
    assert coasting.track_ids.tolist() == [1] and coasting.detection_index.tolist() == [-1]
    # The filter has learnt the walk: the predicted box overlaps the true one well.
    assert pairwise_iou(coasting.boxes, scene.boxes_at(4.5)[1])[0, 0] > 0.7
    back = tracker.update(_detections(scene, 5.5)[0], 5.5)
    assert back.track_ids.tolist() == [1] and back.detection_index.tolist() == [0]
    # Two keyframes missed is past coast_keyframes: not reported, though still kept.
    tracker.update(PersonDetections.empty(), 6.5)
    assert len(tracker.update(PersonDetections.empty(), 7.5)) == 0
    assert len(tracker.predict(7.8)) == 0  # nor drawn between keyframes
    assert tracker.update(_detections(scene, 8.5)[0], 8.5).track_ids.tolist() == [1]


def test_ids_count_from_one_in_every_tracker():
    scene = _two_crossing()
    first, second = PersonTracker(fps=1.0), PersonTracker(fps=2.0)
    for tracker in (first, second):
        out = tracker.update(_detections(scene, 0.5)[0], 0.5)
        assert sorted(out.track_ids.tolist()) == [1, 2]


def test_predict_extrapolates_between_keyframes_and_then_holds():
    scene = CrossingScene((_walker(1, 40.0, 10.0),), 320, 180, 20, 30, 0)
    tracker = PersonTracker(fps=2.0, max_extrapolation_s=1.0)
    assert len(tracker.predict(0.0)) == 0
    for t in np.arange(0.25, 5.0, 0.5):
        tracker.update(_detections(scene, float(t))[0], float(t))
    last = 4.75
    ahead = tracker.predict(last + 0.25)
    assert ahead.detection_index.tolist() == [-1]
    np.testing.assert_allclose(ahead.boxes[0], scene.boxes_at(last + 0.25)[1][0], atol=1.5)
    held = tracker.predict(last + 5.0)
    np.testing.assert_allclose(held.boxes, tracker.predict(last + 1.0).boxes)


def test_update_refuses_keyframes_out_of_order_and_bad_options():
    tracker = PersonTracker(fps=1.0)
    tracker.update(PersonDetections.empty(), 2.0)
    with pytest.raises(ValueError, match="increasing time order"):
        tracker.update(PersonDetections.empty(), 2.0)
    with pytest.raises(ValueError, match="fps"):
        PersonTracker(fps=0.0)
    with pytest.raises(ValueError, match="algorithm"):
        PersonTracker(fps=1.0, algorithm="deepsort")


def test_interpolation_between_keyframes():
    a = TrackedPersons.build([[0, 0, 10, 20], [50, 50, 60, 70]], [0.9, 0.8], [1, 2], [0, 1])
    b = TrackedPersons.build([[10, 0, 20, 20], [90, 0, 99, 9]], [0.7, 0.6], [1, 3], [0, 1])
    mid = interpolate_track_boxes([1.0, 2.0], [a, b], 1.25)
    assert mid.track_ids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(mid.boxes[0], [2.5, 0, 12.5, 20])
    np.testing.assert_allclose(mid.boxes[1], [50, 50, 60, 70])  # only at the left keyframe
    np.testing.assert_allclose(mid.boxes[2], [90, 0, 99, 9])  # only at the right one
    assert mid.detection_index.tolist() == [-1, -1, -1]
    assert interpolate_track_boxes([1.0, 2.0], [a, b], 2.0) is b
    before = interpolate_track_boxes([1.0, 2.0], [a, b], 0.0)
    np.testing.assert_array_equal(before.boxes, a.boxes)
    assert before.detection_index.tolist() == [-1, -1]
    assert len(interpolate_track_boxes([], [], 1.0)) == 0
    with pytest.raises(ValueError, match="2 keyframe times for 1"):
        interpolate_track_boxes([1.0, 2.0], [a], 1.5)


def test_identity_quality_on_a_generated_crowd_with_noisy_detections():
    scene = make_crossing_scene(num_people=8, duration_s=30, seed=21)
    rng = np.random.default_rng(0)
    tracker = PersonTracker(fps=1.0)
    acc = mm.MOTAccumulator(auto_id=True)
    for t in np.arange(0.5, 30, 1.0):
        boxes, scores, _ = noisy_detections(scene, float(t), rng)
        out = tracker.update(PersonDetections(boxes, scores), float(t))
        ids, gt, visibility = scene.boxes_at(float(t))
        iou = pairwise_iou(gt[visibility >= 0.3], out.boxes)
        acc.update(
            ids[visibility >= 0.3].tolist(),
            out.track_ids.tolist(),
            np.where(iou >= 0.5, 1 - iou, np.nan),
        )
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "num_unique_objects"])
    assert summary["num_unique_objects"].iloc[0] == 8
    # benchmarks/tracking_quality.py measures 0.92 over 10 such scenes.
    assert summary["idf1"].iloc[0] > 0.8
