"""The two frame-mAP protocols of `detection.evaluation.frame_map`: hand-computed cases where the
official ActivityNet evaluator and PySlowFast's in-memory evaluation differ, and equality of the
"pyslowfast" protocol with a per-frame loop that follows PySlowFast's code (`run_evaluation` in
slowfast/utils/ava_eval_helper.py and the object-detection evaluation it calls)."""

import csv
import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import reference_frame_map

from detection.ava.labelmap import LabelMap, read_labelmap
from detection.evaluation.frame_map import (
    PROTOCOLS,
    evaluate,
    evaluate_protocols,
    write_results_json,
)

LABELMAP = LabelMap(names={11: "sit", 12: "stand"})
FULL = (0.0, 0.0, 1.0, 1.0)
LEFT = (0.0, 0.0, 0.5, 1.0)  # IoU with FULL is exactly 0.5
RIGHT = (0.5, 0.0, 1.0, 1.0)


def write_rows(path, rows):
    """rows: tuples (video, timestamp, box, action[, last column])."""
    path.write_text(
        "".join(
            f"{v},{t:04d},{b[0]},{b[1]},{b[2]},{b[3]},{a}" + "".join(f",{x}" for x in rest) + "\n"
            for v, t, b, a, *rest in rows
        )
    )
    return path


def both(tmp_path, gt_rows, det_rows, **kwargs):
    gt = write_rows(tmp_path / "gt.csv", gt_rows)
    det = write_rows(tmp_path / "det.csv", det_rows)
    return {p: evaluate(LABELMAP, gt, det, protocol=p, **kwargs) for p in PROTOCOLS}


def test_more_than_50_detections_on_a_frame_only_the_official_protocol_caps(tmp_path):
    # 50 "sit" rows at 0.9 fill the official heap; the correct "stand" row at 0.1 is the 51st.
    # Official: it is dropped, "stand" AP 0. PySlowFast keeps every row: "stand" AP 1.
    gt = [("v", 902, FULL, 12), ("v", 902, FULL, 11)]
    det = [("v", 902, (0.0, 0.0, 0.01 * (i + 1), 1.0), 11, 0.9) for i in range(50)]
    det.append(("v", 902, FULL, 12, 0.1))
    results = both(tmp_path, gt, det)
    assert results["official"].per_class["stand"] == 0.0
    assert results["official"].num_dropped_by_cap == 1
    assert results["pyslowfast"].per_class["stand"] == 1.0
    assert results["pyslowfast"].num_dropped_by_cap == 0
    assert results["pyslowfast"].num_detections["sit"] == 50


def test_within_a_frame_official_matches_by_score_pyslowfast_in_file_order(tmp_path):
    # One "stand" box. File order: B (0.8, IoU 1), then A (0.9, IoU 0.6).
    # Official, by score: A takes the box, B is a duplicate. Ranking A(TP), B(FP): AP 1.
    # PySlowFast, in file order: B takes the box, A finds its best box taken. Ranking A(FP),
    # B(TP): precision 1/2 at recall 1, AP 1/2.
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, FULL, 12, 0.8), ("v", 902, (0.0, 0.0, 0.6, 1.0), 12, 0.9)]
    results = both(tmp_path, gt, det)
    assert results["official"].per_class["stand"] == 1.0
    assert results["pyslowfast"].per_class["stand"] == 0.5
    assert results["official"].num_true_positives == results["pyslowfast"].num_true_positives


def test_equal_iou_official_takes_highest_person_id_pyslowfast_first_in_file(tmp_path):
    # FULL overlaps LEFT and RIGHT by exactly 0.5. Official: the frame's boxes by descending
    # person id (7 before 3), so FULL (0.9) claims RIGHT and the RIGHT detection (0.8) is a FP:
    # ranking TP, FP over 2 boxes, AP 1/2. PySlowFast ignores the person id and keeps file
    # order: FULL claims LEFT, the RIGHT detection is a second TP, AP 1.
    gt = [("v", 902, LEFT, 12, 3), ("v", 902, RIGHT, 12, 7)]
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, RIGHT, 12, 0.8)]
    results = both(tmp_path, gt, det)
    assert results["official"].per_class["stand"] == 0.5
    assert results["pyslowfast"].per_class["stand"] == 1.0


def test_rules_both_protocols_share(tmp_path):
    # Frame 950 has no ground truth (its detection is a FP in both); frame 903 is excluded; the
    # inverted box is dropped. Ranked: 950 (0.95, FP), 902 (0.9, TP): AP 1/2 in both.
    gt = [("v", 902, FULL, 12), ("v", 903, FULL, 12)]
    det = [
        ("v", 950, FULL, 12, 0.95),
        ("v", 902, (0.8, 0.0, 0.2, 1.0), 12, 0.99),
        ("v", 902, FULL, 12, 0.9),
        ("v", 903, FULL, 12, 0.1),
    ]
    results = both(tmp_path, gt, det, excluded={("v", 903)})
    for result in results.values():
        assert result.per_class == {"stand": 0.5}
        assert result.num_detections["stand"] == 2
        assert result.num_on_frames_without_groundtruth == 1


def test_pyslowfast_protocol_takes_no_cap(tmp_path):
    gt = write_rows(tmp_path / "gt.csv", [("v", 902, FULL, 12)])
    det = write_rows(tmp_path / "det.csv", [("v", 902, FULL, 12, 0.9)])
    with pytest.raises(ValueError, match="no per-frame cap"):
        evaluate(LABELMAP, gt, det, protocol="pyslowfast", max_detections_per_frame=50)
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate(LABELMAP, gt, det, protocol="slowfast")


def test_evaluate_protocols_equals_one_call_per_protocol_and_writes_both(tmp_path):
    gt = [("v", 902, LEFT, 12, 3), ("v", 902, RIGHT, 12, 7), ("v", 903, FULL, 11, 0)]
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, RIGHT, 12, 0.8), ("v", 903, LEFT, 11, 0.7)]
    gt_path = write_rows(tmp_path / "gt.csv", gt)
    det_path = write_rows(tmp_path / "det.csv", det)
    results = evaluate_protocols(LABELMAP, gt_path, det_path)
    assert list(results) == ["official", "pyslowfast"]
    for protocol, result in results.items():
        alone = evaluate(LABELMAP, gt_path, det_path, protocol=protocol)
        assert result.protocol == protocol
        assert (result.mAP, result.per_class) == (alone.mAP, alone.per_class)
    path = tmp_path / "metrics.json"
    write_results_json(path, results)
    assert json.loads(path.read_text()) == {
        "official": {"mAP": 0.75, "per_class": {"sit": 1.0, "stand": 0.5}},
        "pyslowfast": {"mAP": 1.0, "per_class": {"sit": 1.0, "stand": 1.0}},
    }


# --- a loop that follows PySlowFast's evaluation -------------------------------------------------


def pyslowfast_loop(labelmap_path, groundtruth_path, detections_path, excluded_path):
    """PySlowFast's `run_evaluation` in plain loops over frames, classes and detections.

    Readers: rows of other classes skipped, each frame's rows kept in file order (no cap, no
    sort; the ground truth's 8th column is not read); frames in order of first appearance.
    Per frame: excluded frames skipped, detection boxes with y1 >= y2 or x1 >= x2 dropped; per
    class, an IoU matrix [detections, boxes], argmax per detection, and a greedy loop in the
    detections' order. Per class: scores concatenated frame by frame, ``np.argsort(s)[::-1]``,
    VOC all-point AP; mean over classes with ground truth. Returns {action id: AP}.
    """
    class_ids = set(read_labelmap(labelmap_path).ids)
    with open(excluded_path, newline="") as f:
        excluded = {(row[0], int(row[1])) for row in csv.reader(f)}

    def read(path, with_score):
        frames = defaultdict(list)  # dicts keep first-appearance order
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if int(row[6]) not in class_ids:
                    continue
                x1, y1, x2, y2 = (float(v) for v in row[2:6])
                score = float(row[7]) if with_score else 1.0
                frames[(row[0], int(row[1]))].append(([y1, x1, y2, x2], int(row[6]), score))
        return frames

    groundtruth = {k: v for k, v in read(groundtruth_path, False).items() if k not in excluded}
    num_gt = defaultdict(int)
    for rows in groundtruth.values():
        for _, action, _ in rows:
            num_gt[action] += 1

    scores, labels = defaultdict(list), defaultdict(list)
    for key, rows in read(detections_path, True).items():
        if key in excluded:
            continue
        rows = [r for r in rows if r[0][0] < r[0][2] and r[0][1] < r[0][3]]
        gt_rows = groundtruth.get(key, [])
        for action in sorted(class_ids):
            dets = [r for r in rows if r[1] == action]
            if not dets:
                continue
            boxes = np.array([r[0] for r in gt_rows if r[1] == action]).reshape(-1, 4)
            is_tp = np.zeros(len(dets), dtype=bool)
            if len(boxes):
                iou = np.array([[loop_iou(d[0], b) for b in boxes] for d in dets])
                best = np.argmax(iou, axis=1)
                taken = np.zeros(len(boxes), dtype=bool)
                for i in range(len(dets)):
                    if iou[i, best[i]] >= 0.5 and not taken[best[i]]:
                        is_tp[i] = taken[best[i]] = True
            scores[action].append(np.array([d[2] for d in dets]))
            labels[action].append(is_tp)

    per_class = {}
    for action in sorted(num_gt):
        s = np.concatenate(scores[action]) if scores[action] else np.zeros(0)
        tp = np.concatenate(labels[action]) if labels[action] else np.zeros(0, dtype=bool)
        ranked = tp[np.argsort(s)[::-1]].astype(int)
        if not len(ranked):
            per_class[action] = 0.0
            continue
        precision = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
        recall = np.concatenate([[0], np.cumsum(ranked) / num_gt[action], [1]])
        precision = np.concatenate([[0], precision, [0]])
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        steps = np.where(recall[1:] != recall[:-1])[0] + 1
        per_class[action] = float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))
    return per_class


def loop_iou(a, b):
    """IoU of two (y1, x1, y2, x2) boxes, no +1, intersection height times width."""
    height = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    width = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    intersection = height * width
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
    return intersection / union


@pytest.mark.parametrize(("decimals", "seed"), [(6, 10), (1, 11), (2, 12)])
def test_pyslowfast_protocol_matches_the_loop_on_generated_data(tmp_path, decimals, seed):
    """Generated AVA-like files with many rows over 50 per frame, rows shuffled (so each frame's
    order is arbitrary), duplicated rows, tied scores (1 or 2 decimals), inverted and
    out-of-range boxes; box coordinates with 2 decimals make equal IoUs common."""
    generator = reference_frame_map
    gt, det, excluded = generator.generate_ava_like(
        tmp_path,
        num_videos=3,
        frames_per_video=30,
        persons_per_frame=2.5,
        classes_per_box=30,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    rows = []
    for line in det.read_text().splitlines():
        fields = line.split(",")
        box = [round(float(v), 2) for v in fields[2:6]]
        roll = rng.random()
        if roll < 0.03:
            box[0], box[2] = box[2], box[0]  # inverted
        elif roll < 0.06:
            box[0], box[3] = box[0] - 0.1, box[3] + 0.25  # outside [0, 1]
        fields[2:6] = [f"{v:.2f}" for v in box]
        fields[7] = f"{float(fields[7]):.{decimals}f}"
        rows.append(",".join(fields))
        if rng.random() < 0.05:
            rows.append(rows[-1])
    rng.shuffle(rows)
    det.write_text("\n".join(rows) + "\n")
    gt_rows = []
    for line in gt.read_text().splitlines():
        fields = line.split(",")
        box = [round(float(v), 2) for v in fields[2:6]]
        if rng.random() < 0.05:
            box[3] += 0.3  # may end outside [0, 1]
        fields[2:6] = [f"{v:.2f}" for v in box]
        gt_rows.append(",".join(fields))
    gt.write_text("\n".join(gt_rows) + "\n")

    labelmap = generator.EVAL_LABELMAP
    ours = evaluate(labelmap, gt, det, excluded, protocol="pyslowfast")
    reference = pyslowfast_loop(labelmap, gt, det, excluded)
    ours_by_id = {ours.class_ids[name]: ap for name, ap in ours.per_class.items()}
    assert ours_by_id.keys() == reference.keys()
    for action_id, ap in reference.items():
        assert ours_by_id[action_id] == pytest.approx(ap, abs=1e-12), action_id
    assert ours.mAP == pytest.approx(np.mean(list(reference.values())), abs=1e-12)
    official = evaluate(labelmap, gt, det, excluded)
    assert official.num_dropped_by_cap > 0 and official.mAP != ours.mAP


def test_eval_ava_cli_protocol_and_strict(tmp_path, project_root):
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\n')
    gt = write_rows(tmp_path / "gt.csv", [("v", 902, FULL, 12)])
    # The inverted row is scored (dropped) with a warning; file order matters to PySlowFast.
    det = write_rows(
        tmp_path / "det.csv",
        [
            ("v", 902, (0.9, 0.0, 0.1, 1.0), 12, 0.95),
            ("v", 902, FULL, 12, 0.8),
            ("v", 902, (0.0, 0.0, 0.6, 1.0), 12, 0.9),
        ],
    )
    command = [sys.executable, str(project_root / "tools/eval_ava.py"), "-l", str(labelmap)]
    command += ["-g", str(gt), "-d", str(det)]

    def run(*extra):
        return subprocess.run([*command, *extra], capture_output=True, text=True, cwd=project_root)

    official = run("--output-json", str(tmp_path / "official.json"))
    assert official.returncode == 0, official.stderr
    assert "mAP@0.5IOU: 1.000000 over 1 classes" in official.stdout
    assert "official protocol" in official.stdout
    assert official.stderr.count("WARNING") == 1
    assert "1 rows have a box that is inverted" in official.stderr and "line 1:" in official.stderr
    pyslowfast = run("--protocol", "pyslowfast", "--output-json", str(tmp_path / "psf.json"))
    assert "mAP@0.5IOU: 0.500000 over 1 classes" in pyslowfast.stdout
    assert json.loads((tmp_path / "psf.json").read_text()) == {
        "protocol": "pyslowfast",
        "mAP": 0.5,
        "per_class": {"stand": 0.5},
    }
    strict = run("--strict")
    assert strict.returncode == 2
    assert strict.stderr.strip() == f"error: {det}:1: x1 = 0.9 > x2 = 0.1"
