import json
import subprocess
import sys

import pytest

from detection.evaluation.person_ap import evaluate_person_boxes

A = (0.1, 0.1, 0.4, 0.9)
B = (0.5, 0.1, 0.9, 0.9)
ELSEWHERE = (0.0, 0.0, 0.05, 0.05)


def write_gt(tmp_path, rows):
    path = tmp_path / "gt.csv"
    path.write_text(
        "".join(f"{v},{t:04d},{b[0]},{b[1]},{b[2]},{b[3]},{a},{p}\n" for v, t, b, a, p in rows)
    )
    return path


def write_boxes(tmp_path, rows):
    path = tmp_path / "boxes.csv"
    path.write_text(
        "".join(f"{v},{t:04d},{b[0]},{b[1]},{b[2]},{b[3]},,{s}\n" for v, t, b, s in rows)
    )
    return path


# Two persons in frame 902, each annotated with two actions: 2 unique ground-truth boxes.
GT = [("v", 902, A, 12, 0), ("v", 902, A, 80, 0), ("v", 902, B, 11, 1), ("v", 902, B, 17, 1)]


def test_perfect_boxes(tmp_path):
    result = evaluate_person_boxes(
        write_gt(tmp_path, GT), write_boxes(tmp_path, [("v", 902, A, 0.99), ("v", 902, B, 0.97)])
    )
    assert result.ap50 == pytest.approx(1.0) and result.ap == pytest.approx(1.0)
    assert result.recall50_at_threshold == 1.0
    assert (result.num_groundtruth, result.num_detections, result.num_frames) == (2, 2, 1)


def test_hand_computed_false_positive_first(tmp_path):
    # Ranked: a false positive (0.95), then person A (0.9); person B is missed.
    # Precision 0, 1/2 at recall 0, 1/2. COCO interpolates at 101 recall points: the 51
    # points 0.00..0.50 get precision 1/2, the rest 0: AP50 = 51 * 0.5 / 101.
    boxes = [
        ("v", 902, ELSEWHERE, 0.95),
        ("v", 902, A, 0.9),
        ("v", 902, A, 0.9),
    ]  # a repeated row (one per action) counts once
    result = evaluate_person_boxes(
        write_gt(tmp_path, GT), write_boxes(tmp_path, boxes), score_threshold=0.8
    )
    assert result.ap50 == pytest.approx(51 * 0.5 / 101)
    assert result.num_detections == 2
    assert result.recall50_at_threshold == 0.5
    strict = evaluate_person_boxes(
        write_gt(tmp_path, GT), write_boxes(tmp_path, boxes), score_threshold=0.92
    )
    assert strict.recall50_at_threshold == 0.0  # only the false positive scores >= 0.92


def test_frames_without_groundtruth_and_excluded_frames(tmp_path):
    gt = [*GT, ("v", 903, A, 12, 0)]
    boxes = [("v", 902, A, 0.9), ("v", 902, B, 0.9), ("v", 950, A, 0.99)]
    result = evaluate_person_boxes(write_gt(tmp_path, gt), write_boxes(tmp_path, boxes))
    # Frame 950 has no ground truth and is not scored; frame 903's person is missed.
    assert result.num_detections == 2 and result.num_groundtruth == 3
    assert result.recall50_at_threshold == pytest.approx(2 / 3)
    excluded = evaluate_person_boxes(
        write_gt(tmp_path, gt), write_boxes(tmp_path, boxes), excluded={("v", 903)}
    )
    assert excluded.recall50_at_threshold == 1.0 and excluded.num_frames == 1


def test_no_detections(tmp_path):
    result = evaluate_person_boxes(write_gt(tmp_path, GT), write_boxes(tmp_path, []))
    assert result.ap50 == 0.0 and result.recall50_at_threshold == 0.0


def test_cli_prints_and_writes_json(tmp_path, project_root):
    out = tmp_path / "person.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(project_root / "tools/eval_person_ap.py"),
            "-g",
            str(write_gt(tmp_path, GT)),
            "-d",
            str(write_boxes(tmp_path, [("v", 902, A, 0.99), ("v", 902, B, 0.5)])),
            "--output-json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "person AP@0.5: 100.0" in completed.stdout
    assert "recall@0.5 at score >= 0.8: 50.0" in completed.stdout
    assert json.loads(out.read_text())["num_groundtruth"] == 2
