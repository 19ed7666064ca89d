import csv
import json

import numpy as np
import pytest

from detection.ava.labelmap import LabelMap
from detection.engine.segments import (
    ActionSegmenter,
    action_totals,
    smooth_track_scores,
    write_segments_csv,
    write_segments_json,
)

LABELS = LabelMap({3: "stand", 7: "talk"})


def _segmenter(**kw) -> ActionSegmenter:
    options = dict(on_threshold=0.5, off_threshold=0.4, keyframe_period_s=1.0)
    options.update(kw)
    return ActionSegmenter(LABELS, **options)


def _feed(segmenter: ActionSegmenter, times, ids, scores) -> list:
    for t, i, s in zip(times, ids, scores, strict=True):
        segmenter.update(t, np.array(i, np.int64), np.array(s, np.float32).reshape(len(i), 2))
    return segmenter.finish()


def test_hysteresis_merges_keyframes_and_clips_to_the_video():
    talk = [0.2, 0.6, 0.45, 0.41, 0.35, 0.2, 0.7, 0.9]
    times = [0.5 + k for k in range(len(talk))]
    segments = _feed(
        _segmenter(duration_s=7.8), times, [[4]] * len(talk), [[[0.9, s]] for s in talk]
    )
    stand = [s for s in segments if s.action_name == "stand"]
    talking = [s for s in segments if s.action_name == "talk"]
    # Standing throughout: from the start of the video (clipped at 0) to its end (7.8).
    assert [(s.start_s, s.end_s) for s in stand] == [(0.0, 7.8)]
    # 0.6 opens, 0.45 and 0.41 (>= off) continue, 0.35 closes; 0.7 opens again.
    assert [(s.start_s, s.end_s) for s in talking] == [(1.0, 4.0), (6.0, 7.8)]
    first = talking[0]
    assert first.track_id == 4 and first.action_id == 7
    assert first.max_score == pytest.approx(0.6)
    assert first.mean_score == pytest.approx(np.mean([0.6, 0.45, 0.41]), rel=1e-6)


def test_a_track_that_disappears_ends_its_segments_where_it_was_last_seen():
    segments = _feed(
        _segmenter(),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [[1, 2], [1, 2], [2], [1, 2], [], [2]],
        [
            [[0.9, 0], [0.9, 0]],
            [[0.9, 0], [0.9, 0]],
            [[0.9, 0]],
            [[0.9, 0], [0.9, 0]],
            np.zeros((0, 2)),
            [[0.9, 0]],
        ],
    )
    spans = {(s.track_id, s.start_s, s.end_s) for s in segments}
    assert spans == {(1, 0.5, 2.5), (1, 3.5, 4.5), (2, 0.5, 4.5), (2, 5.5, 6.5)}


def test_smoothing_removes_a_one_keyframe_spike_and_matches_the_offline_scores():
    spike = [0.1, 0.1, 0.1, 0.95, 0.1, 0.1]
    steady = [0.1, 0.7, 0.7, 0.7, 0.7, 0.1]
    times = [float(k) for k in range(6)]
    scores = [np.array([[a, b]], np.float32) for a, b in zip(spike, steady, strict=True)]
    ids = [np.array([9])] * 6
    raw = _feed(_segmenter(), times, ids, scores)
    smooth = _feed(_segmenter(smoothing=3), times, ids, scores)
    assert {s.action_name for s in raw} == {"stand", "talk"}
    assert {s.action_name for s in smooth} == {"talk"}
    offline = smooth_track_scores(times, ids, scores, smoothing=3)
    expected = [np.mean(steady[max(0, k - 1) : k + 2]) for k in range(6)]
    np.testing.assert_allclose([o[0, 1] for o in offline], expected, rtol=1e-6)
    assert smooth[0].max_score == pytest.approx(max(expected), rel=1e-6)
    # A track absent from a keyframe starts a new run: no averaging across the gap.
    gap = smooth_track_scores(
        [0.0, 1.0, 2.0], [np.array([1]), np.array([]), np.array([1])],
        [np.array([[0.0, 0.0]]), np.zeros((0, 2)), np.array([[1.0, 1.0]])], smoothing=3,
    )  # fmt: skip
    np.testing.assert_array_equal(gap[0], [[0.0, 0.0]])
    np.testing.assert_array_equal(gap[2], [[1.0, 1.0]])


def test_writers_and_totals(tmp_path):
    segments = _feed(
        _segmenter(duration_s=3.0),
        [0.5, 1.5, 2.5],
        [[1, 2], [1, 2], [1]],
        [[[0.9, 0.6], [0.8, 0.1]], [[0.9, 0.1], [0.1, 0.1]], [[0.95, 0.1]]],
    )
    write_segments_csv(tmp_path / "s.csv", segments)
    with open(tmp_path / "s.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "track_id", "action_id", "action", "start_s", "end_s", "mean_score", "max_score",
    ]  # fmt: skip
    assert [(r["track_id"], r["action"], r["start_s"], r["end_s"]) for r in rows] == [
        ("1", "stand", "0.000", "3.000"),
        ("1", "talk", "0.000", "1.000"),
        ("2", "stand", "0.000", "1.000"),
    ]
    totals = action_totals(segments)
    assert totals == {"stand": 4.0, "talk": 1.0}
    write_segments_json(tmp_path / "s.json", segments, duration_s=3.0, metadata={"video": "a"})
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["totals_s"] == totals and doc["metadata"] == {"video": "a"}
    assert doc["segments"][1]["action_name"] == "talk" and len(doc["segments"]) == 3


def test_bad_arguments():
    with pytest.raises(ValueError, match="off_threshold"):
        _segmenter(off_threshold=0.6)
    with pytest.raises(ValueError, match="odd window"):
        _segmenter(smoothing=4)
    segmenter = _segmenter()
    with pytest.raises(ValueError, match="3 columns, the label map 2"):
        segmenter.update(1.0, np.array([1]), np.zeros((1, 3)))
    segmenter.update(1.0, np.array([1]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="increasing time order"):
        segmenter.update(1.0, np.array([1]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="repeat"):
        segmenter.update(2.0, np.array([1, 1]), np.zeros((2, 2)))
