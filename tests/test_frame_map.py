import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference_frame_map

from detection.ava import csv_io
from detection.ava.csv_io import AvaCsvError, read_ava_csv
from detection.ava.labelmap import LabelMap, read_labelmap
from detection.evaluation import frame_map
from detection.evaluation.frame_map import average_precision, evaluate
from detection.structures.boxes import paired_iou

# A small label map: "sit" and "stand" evaluated; action 2 ("crawl") is not in it.
LABELMAP = LabelMap(names={11: "sit", 12: "stand"})
FULL = (0.0, 0.0, 1.0, 1.0)
LEFT = (0.0, 0.0, 0.5, 1.0)  # IoU with FULL is exactly 0.5: intersection 0.5, union 1
RIGHT = (0.5, 0.0, 1.0, 1.0)


def gt_csv(tmp_path, rows, name="gt.csv"):
    """rows: (video, timestamp, box, action[, person])."""
    path = tmp_path / name
    path.write_text(
        "".join(
            f"{v},{t:04d},{b[0]},{b[1]},{b[2]},{b[3]},{a}" + (f",{r[0]}" if r else "") + "\n"
            for v, t, b, a, *r in rows
        )
    )
    return path


def det_csv(tmp_path, rows, name="det.csv"):
    """rows: (video, timestamp, box, action, score)."""
    path = tmp_path / name
    path.write_text(
        "".join(f"{v},{t:04d},{b[0]},{b[1]},{b[2]},{b[3]},{a},{s}\n" for v, t, b, a, s in rows)
    )
    return path


def run(tmp_path, gt_rows, det_rows, **kwargs):
    return evaluate(LABELMAP, gt_csv(tmp_path, gt_rows), det_csv(tmp_path, det_rows), **kwargs)


def test_iou_exactly_half_is_a_match_and_just_below_is_not(tmp_path):
    assert paired_iou(np.array([LEFT]), np.array([FULL]))[0] == 0.5
    gt = [("v", 902, FULL, 12)]
    assert run(tmp_path, gt, [("v", 902, LEFT, 12, 0.9)]).per_class == {"stand": 1.0}
    below = (0.0, 0.0, 0.49, 1.0)  # IoU 0.49
    assert run(tmp_path, gt, [("v", 902, below, 12, 0.9)]).per_class == {"stand": 0.0}


def test_hand_computed_ap_true_false_true(tmp_path):
    # Two boxes of "stand"; ranked detections: TP (0.9), FP (0.8, wrong place), TP (0.7).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; made non-increasing from the right:
    # 1, 2/3, 2/3. AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    gt = [("v", 902, LEFT, 12, 0), ("v", 902, RIGHT, 12, 1)]
    det = [
        ("v", 902, LEFT, 12, 0.9),
        ("v", 902, (0.2, 0.0, 0.3, 0.1), 12, 0.8),
        ("v", 902, RIGHT, 12, 0.7),
    ]
    result = run(tmp_path, gt, det)
    assert result.per_class["stand"] == pytest.approx(5 / 6, abs=1e-12)
    assert result.num_true_positives["stand"] == 2 and result.num_groundtruth["stand"] == 2


def test_duplicate_detection_is_a_false_positive_without_fall_back(tmp_path):
    # Both detections' best box is FULL (IoU 1 and 0.95); the second finds it taken and is a
    # false positive, although it overlaps the other box by 0.63 (no fall-back to the next box).
    other = (0.0, 0.0, 0.6, 1.0)
    gt = [("v", 902, FULL, 12, 0), ("v", 902, other, 12, 1)]
    second = (0.0, 0.0, 0.95, 1.0)  # IoU 0.95 with FULL, 0.6 / 0.95 with `other`
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, second, 12, 0.8)]
    result = run(tmp_path, gt, det)
    # ranking TP, FP; 2 boxes: precision 1 at recall 1/2, then 1/2 at 1/2. AP = 1/2.
    assert result.per_class["stand"] == 0.5
    assert result.num_true_positives["stand"] == 1


def test_higher_score_takes_the_box_even_with_lower_iou(tmp_path):
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, (0.0, 0.0, 0.6, 1.0), 12, 0.9), ("v", 902, FULL, 12, 0.5)]
    # The 0.9 detection (IoU 0.6) is the TP, the exact box at 0.5 a FP: AP = 1 * 1 = 1.
    result = run(tmp_path, gt, det)
    assert result.per_class["stand"] == 1.0 and result.num_true_positives["stand"] == 1


def test_empty_detections_give_zero_ap_for_classes_with_groundtruth(tmp_path):
    result = run(tmp_path, [("v", 902, FULL, 12), ("v", 903, FULL, 11)], [])
    assert result.per_class == {"sit": 0.0, "stand": 0.0}
    assert result.mAP == 0.0


def test_classes_without_groundtruth_are_left_out_and_other_classes_dropped(tmp_path):
    gt = [("v", 902, FULL, 12), ("v", 902, FULL, 2)]  # action 2 is not in the label map
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, FULL, 11, 0.9), ("v", 902, FULL, 2, 0.9)]
    result = run(tmp_path, gt, det)
    assert result.per_class == {"stand": 1.0}
    assert result.mAP == 1.0
    assert result.num_detections == {"sit": 1, "stand": 1}
    path = tmp_path / "out" / "result.json"
    result.to_json(path)
    assert json.loads(path.read_text()) == {
        "protocol": "official",
        "mAP": 1.0,
        "per_class": {"stand": 1.0},
    }


@pytest.mark.parametrize(
    ("gt_rows", "excluded", "message"),
    [
        ([], None, "gt.csv has no ground-truth box"),
        ([("v", 902, FULL, 2)], None, r"no action id of .*gt.csv \(\[2\]\) is a class of"),
        ([("v", 902, FULL, 12)], [("v", 902)], "every ground-truth frame of .*gt.csv is excluded"),
    ],
)
def test_nothing_to_evaluate_is_an_error_naming_the_ground_truth(
    tmp_path, gt_rows, excluded, message
):
    # Once a NaN mAP (exit code 0); a run with no ground truth must not look like a result.
    with pytest.raises(frame_map.EvaluationError, match=message) as error:
        run(tmp_path, gt_rows, [("v", 902, FULL, 12, 0.9)], excluded=excluded)
    assert isinstance(error.value, ValueError)


def test_results_keep_every_class_of_equal_looking_maps_apart(tmp_path):
    # Per-class results are keyed by name: names must be unique, and ids far apart are fine.
    labelmap = LabelMap(names={1: "a", 2: "b", 2_000_000_000: "c"})
    gt = [("v", 902, FULL, 1), ("v", 902, LEFT, 2), ("v", 903, FULL, 2_000_000_000)]
    det = [("v", 902, FULL, 1, 0.9), ("v", 903, FULL, 2_000_000_000, 0.8)]
    result = evaluate(labelmap, gt_csv(tmp_path, gt), det_csv(tmp_path, det))
    assert result.per_class == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert result.mAP == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="class name 'a' is used by ids 1 and 2"):
        LabelMap(names={1: "a", 2: "a"})


def test_cap_keeps_the_50_best_per_frame(tmp_path):
    # 50 "sit" detections at 0.9 fill the frame; the only correct "stand" detection at 0.1 is
    # the 51st and is dropped, so "stand" gets AP 0. Without the cap it gets 1.
    gt = [("v", 902, FULL, 12), ("v", 902, FULL, 11)]
    det = [("v", 902, (0.0, 0.0, 0.01 * (i + 1), 1.0), 11, 0.9) for i in range(50)]
    det.append(("v", 902, FULL, 12, 0.1))
    capped = run(tmp_path, gt, det)
    assert capped.per_class["stand"] == 0.0 and capped.num_dropped_by_cap == 1
    uncapped = run(tmp_path, gt, det, max_detections_per_frame=None)
    assert uncapped.per_class["stand"] == 1.0 and uncapped.num_dropped_by_cap == 0


def test_cap_boundary_tie_follows_the_official_heap(tmp_path):
    # 49 "sit" rows at 0.9, then two rows tied at 0.5 for the last place: "stand" (correct)
    # first in the file, "sit" second. The heap lets a row into a full heap only with a score
    # strictly greater than its smallest, so the first of the tied rows stays.
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, (0.0, 0.0, 0.01 * (i + 1), 1.0), 11, 0.9) for i in range(49)]
    det += [("v", 902, FULL, 12, 0.5), ("v", 902, FULL, 11, 0.5)]
    assert run(tmp_path, gt, det).per_class["stand"] == 1.0
    det[-2], det[-1] = det[-1], det[-2]  # the "sit" row now comes first and keeps the place
    assert run(tmp_path, gt, det).per_class["stand"] == 0.0


def test_score_ties_across_frames_follow_numpys_default_argsort(tmp_path):
    # One "stand" box in frame 903; the frame-902 detection is a FP, the frame-903 one a TP,
    # both scored 0.5. The official ranking is np.argsort([0.5, 0.5])[::-1] over the scores
    # concatenated in the order frames first appear: TP first gives AP 1, FP first AP 1/2.
    gt = [("v", 903, FULL, 12), ("v", 902, FULL, 11)]
    det = [("v", 902, FULL, 12, 0.5), ("v", 903, FULL, 12, 0.5)]
    first = np.argsort(np.array([0.5, 0.5]))[::-1][0]  # index of the detection ranked first
    expected = 1.0 if first == 1 else 0.5
    assert run(tmp_path, gt, det).per_class["stand"] == expected
    swapped = 1.0 if first == 0 else 0.5  # frame 903 now appears first in the file
    assert run(tmp_path, gt, det[::-1]).per_class["stand"] == swapped


def test_excluded_frames_are_removed_from_both_sides(tmp_path):
    gt = [("v", 902, FULL, 12), ("v", 903, FULL, 12)]
    det = [("v", 902, FULL, 12, 0.9)]
    assert run(tmp_path, gt, det).per_class["stand"] == 0.5  # 1 of 2 boxes found
    excluded = tmp_path / "excluded.csv"
    excluded.write_text("v,0903\n")
    result = run(tmp_path, gt, det, excluded=excluded)
    assert result.per_class["stand"] == 1.0 and result.num_frames == 1
    # Excluding the detected frame removes its detection and its box.
    assert run(tmp_path, gt, det, excluded={("v", 902)}).per_class["stand"] == 0.0


def test_detections_on_frames_without_groundtruth(tmp_path):
    gt = [("v", 902, FULL, 12)]
    det = [("v", 950, FULL, 12, 0.9), ("v", 902, FULL, 12, 0.8)]
    # Official: the 0.9 detection on frame 950 is a false positive. Ranked FP, TP: AP = 1/2.
    official = run(tmp_path, gt, det)
    assert official.per_class["stand"] == 0.5
    assert official.num_on_frames_without_groundtruth == 1
    assert run(tmp_path, gt, det, frames_without_groundtruth="ignore").per_class["stand"] == 1.0
    # The same on a video the ground truth does not have at all.
    other_video = [("w", 902, FULL, 12, 0.9), ("v", 902, FULL, 12, 0.8)]
    assert run(tmp_path, gt, other_video).per_class["stand"] == 0.5


def test_empty_detection_boxes_are_dropped_not_counted(tmp_path):
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, (0.3, 0.0, 0.3, 1.0), 12, 0.9), ("v", 902, FULL, 12, 0.8)]
    result = run(tmp_path, gt, det)
    assert result.per_class["stand"] == 1.0 and result.num_detections["stand"] == 1


def test_equal_iou_takes_the_box_with_the_highest_person_id(tmp_path):
    # The full-frame detection overlaps both halves by exactly 0.5; the official reader orders
    # a frame's boxes by descending 8th column (the person id), so it claims person 7's box.
    # The second detection is exactly that box, finds it taken, and is a false positive.
    gt = [("v", 902, LEFT, 12, 3), ("v", 902, RIGHT, 12, 7)]
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, RIGHT, 12, 0.8)]
    result = run(tmp_path, gt, det)
    assert result.num_true_positives["stand"] == 1
    gt_swapped = [("v", 902, LEFT, 12, 7), ("v", 902, RIGHT, 12, 3)]
    assert run(tmp_path, gt_swapped, det).num_true_positives["stand"] == 2


def test_equal_iou_without_person_ids_follows_the_official_heap_order(tmp_path):
    # Without person ids every box scores 1 in the official reader, which leaves the frame's
    # boxes in its heap order. Pushing RIGHT then LEFT puts LEFT first (the smaller entry,
    # (1.0, 12, y1=0, x1=0, ...) < (1.0, 12, 0, 0.5, ...), rises to the top), so the full-frame
    # detection (IoU 0.5 with both) claims LEFT and the RIGHT detection is a second TP; file
    # order would have given RIGHT to the first detection and left one TP.
    gt = [("v", 902, RIGHT, 12), ("v", 902, LEFT, 12)]
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, RIGHT, 12, 0.8)]
    result = run(tmp_path, gt, det)
    assert result.num_true_positives["stand"] == 2
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\n')
    _, reference_ap = reference_frame_map.reference_evaluate(
        labelmap, tmp_path / "gt.csv", tmp_path / "det.csv"
    )
    assert reference_ap == {12: result.per_class["stand"]} == {12: 1.0}


def test_accepts_read_frames_and_label_map(tmp_path):
    gt = gt_csv(tmp_path, [("v", 902, FULL, 12)])
    det = det_csv(tmp_path, [("v", 902, FULL, 12, 0.9)])
    result = evaluate(
        LABELMAP,
        read_ava_csv(gt, kind="groundtruth"),
        read_ava_csv(det, kind="detections"),
        excluded=set(),
    )
    assert result.per_class == {"stand": 1.0}
    assert result.class_ids == {"sit": 11, "stand": 12}


def test_average_precision_matches_the_step_definition():
    # Ranked TP, FP, FP, TP with 4 boxes: precision 1, .5, 1/3, .5 at recall .25, .25, .25, .5;
    # envelope 1, .5, .5, .5; AP = .25 * 1 + .25 * .5 = .375.
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert average_precision(scores, np.array([True, False, False, True]), 4) == 0.375


@pytest.mark.parametrize(("decimals", "seed"), [(6, 0), (1, 1), (2, 2)])
def test_matches_the_official_loop_reference_on_generated_data(tmp_path, decimals, seed):
    """Generated AVA-like files (long-tailed classes, jittered boxes, false boxes, excluded
    frames); with 1 or 2 score decimals most scores tie and frames hit the cap on tied scores,
    and some rows are duplicated or share class and score with another box of the frame."""
    reference = reference_frame_map
    gt, det, excluded = reference.generate_ava_like(
        tmp_path,
        num_videos=3,
        frames_per_video=40,
        persons_per_frame=2.0,
        classes_per_box=30,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    rows = []
    for line in det.read_text().splitlines():
        fields = line.split(",")
        fields[7] = f"{float(fields[7]):.{decimals}f}"
        rows.append(",".join(fields))
        if rng.random() < 0.05:
            rows.append(rows[-1])
        if rng.random() < 0.05:  # same class and score, another box
            fields[2] = f"{float(fields[2]) * 0.9:.3f}"
            rows.append(",".join(fields))
    rng.shuffle(rows)
    det.write_text("\n".join(rows) + "\n")

    labelmap = reference.EVAL_LABELMAP
    for ignore in (False, True):
        ours = evaluate(
            labelmap,
            gt,
            det,
            excluded,
            frames_without_groundtruth=("ignore" if ignore else "false_positive"),
        )
        ref_map, ref_per_class = reference.reference_evaluate(
            labelmap, gt, det, excluded, ignore_frames_without_groundtruth=ignore
        )
        ours_by_id = {ours.class_ids[name]: ap for name, ap in ours.per_class.items()}
        assert ours_by_id.keys() == ref_per_class.keys()
        for action_id, ap in ref_per_class.items():
            assert ours_by_id[action_id] == pytest.approx(ap, abs=1e-12), action_id
        assert ours.mAP == pytest.approx(ref_map, abs=1e-12)
        assert ours.num_dropped_by_cap > 0


def test_eval_ava_cli_prints_table_and_writes_json_and_plot(tmp_path, project_root):
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text(
        'item {\n  name: "sit"\n  id: 11\n}\nitem {\n  name: "stand"\n  id: 12\n}\n'
    )
    gt = gt_csv(
        tmp_path, [("v", 902, FULL, 12, 0), ("v", 902, LEFT, 11, 0), ("v", 903, FULL, 11, 1)]
    )
    det = det_csv(tmp_path, [("v", 902, FULL, 12, 0.9), ("v", 902, LEFT, 11, 0.8)])
    excluded = tmp_path / "excluded.csv"
    excluded.write_text("v,0903\n")
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable,
            str(project_root / "tools/eval_ava.py"),
            "-l",
            str(labelmap),
            "-g",
            str(gt),
            "-d",
            str(det),
            "-e",
            str(excluded),
            "--output-json",
            str(out / "result.json"),
            "--plot",
            str(out / "ap.png"),
            "--table-csv",
            str(out / "table.csv"),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=project_root,
    )
    # Frame 903 is excluded, so both classes are found perfectly.
    assert "mAP@0.5IOU: 1.000000 over 2 classes" in completed.stdout
    assert "| stand | 1.0000 | PERSON_MOVEMENT | 12 | 1 | 1 | 1 |" in completed.stdout
    assert "PERSON_MOVEMENT: 1.000000" in completed.stdout
    assert json.loads((out / "result.json").read_text()) == {
        "protocol": "official",
        "mAP": 1.0,
        "per_class": {"sit": 1.0, "stand": 1.0},
    }
    assert (out / "ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "table.csv").read_text().splitlines()[0].startswith("class,ap,group")


def test_eval_ava_cli_help_says_what_it_reads_and_writes(project_root):
    completed = subprocess.run(
        [sys.executable, str(project_root / "tools/eval_ava.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Reads:" in completed.stdout and "Writes:" in completed.stdout


@pytest.mark.parametrize(
    ("output", "input_name"),
    [
        ("--output-json", "--detections"),
        ("--table-csv", "--groundtruth"),
        ("--plot", "--labelmap"),
        ("--output-json", "--exclusions"),
    ],
)
def test_eval_ava_cli_refuses_an_output_that_is_an_input(
    tmp_path, project_root, output, input_name
):
    labelmap = tmp_path / "labelmap.pbtxt"
    labelmap.write_text('item {\n  name: "stand"\n  id: 12\n}\n')
    gt = gt_csv(tmp_path, [("v", 902, FULL, 12, 0)])
    det = det_csv(tmp_path, [("v", 902, FULL, 12, 0.9)])
    excluded = tmp_path / "excluded.csv"
    excluded.write_text("v,0903\n")
    inputs = {"--labelmap": labelmap, "--groundtruth": gt, "--detections": det}
    inputs["--exclusions"] = excluded
    # The output names the input through another spelling: a/../b is b.
    target = inputs[input_name]
    spelled = target.parent / "sub" / ".." / target.name
    (target.parent / "sub").mkdir()
    before = {name: path.read_bytes() for name, path in inputs.items()}
    command = [sys.executable, str(project_root / "tools/eval_ava.py")]
    for name, path in inputs.items():
        command += [name, str(path)]
    completed = subprocess.run(
        [*command, output, str(spelled)], capture_output=True, text=True, cwd=project_root
    )
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert output in lines[0] and input_name in lines[0]
    assert {name: path.read_bytes() for name, path in inputs.items()} == before
    assert "mAP" not in completed.stdout


def test_eval_ava_cli_help_imports_neither_pandas_nor_matplotlib(project_root):
    """--help is instant: the heavy libraries are imported where they are used."""
    code = (
        "import sys; sys.argv = ['eval_ava', '--help']\n"
        "from detection.apps.eval_ava import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=project_root
    )
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_eval_ava_prints_the_report_table_without_importing_pandas(tmp_path, project_root):
    """Evaluating files is pandas-free (its import costs more than a small file's evaluation),
    and the printed table is the report's, ties in AP included."""
    from detection.ava.packaged import ALL_CLASSES, packaged_labelmap_path
    from detection.evaluation.report import per_class_table, to_markdown

    gt, det, excluded = reference_frame_map.generate_ava_like(
        tmp_path, num_videos=2, frames_per_video=30, classes_per_box=6, seed=5
    )
    labelmap = reference_frame_map.EVAL_LABELMAP
    code = (
        "import sys\n"
        "from detection.apps.eval_ava import main\n"
        f"main(['-l', {str(labelmap)!r}, '-g', {str(gt)!r}, '-d', {str(det)!r}, "
        f"'-e', {str(excluded)!r}])\n"
        "print(sorted(m for m in ('pandas', 'matplotlib') if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=project_root
    )
    *printed, modules = completed.stdout.strip().splitlines()
    assert modules == "[]"
    result = evaluate(labelmap, gt, det, excluded)
    aps = list(result.per_class.values())
    assert len(set(aps)) < len(aps)  # tied APs, whose order the table must keep
    groups = read_labelmap(packaged_labelmap_path(ALL_CLASSES))
    table = to_markdown(per_class_table(result, groups))
    assert "\n".join(printed[2 : 2 + len(table.splitlines())]) == table


def test_detections_parsed_in_many_blocks_give_the_same_result(tmp_path, monkeypatch):
    """A detections path is parsed in blocks, each with its own table of video ids; the blocks
    must share one video numbering."""
    reference = reference_frame_map
    gt, det, excluded = reference.generate_ava_like(
        tmp_path, num_videos=3, frames_per_video=20, classes_per_box=10, seed=3
    )
    whole = evaluate(reference.EVAL_LABELMAP, gt, read_ava_csv(det, kind="detections"), excluded)
    monkeypatch.setattr(csv_io, "_BLOCK_BYTES", 2048)
    assert det.stat().st_size > 10 * 2048
    fast = csv_io._read_fast(det, "detections", "strict")  # None would mean pandas read it
    assert fast is not None
    by_pandas = csv_io.AvaColumns.from_frame(read_ava_csv(det, kind="detections"))
    assert fast.videos == by_pandas.videos
    np.testing.assert_array_equal(fast.video, by_pandas.video)
    by_blocks = evaluate(reference.EVAL_LABELMAP, gt, det, excluded)
    assert by_blocks.per_class == whole.per_class and by_blocks.mAP == whole.mAP


def test_box_outside_the_unit_square_uses_the_official_iou_unclipped(tmp_path, caplog):
    # The detection spans x in [-1.2, 1]: intersection 1, union 2.2 + 1 - 1 = 2.2, IoU 0.45 < 0.5,
    # a false positive (clipped to [0, 1] it would be the box itself). At x1 = -1 the union is 2
    # and the IoU exactly 0.5: a match.
    gt = [("v", 902, FULL, 12)]
    assert run(tmp_path, gt, [("v", 902, (-1.2, 0.0, 1.0, 1.0), 12, 0.9)]).per_class == {
        "stand": 0.0
    }
    assert run(tmp_path, gt, [("v", 902, (-1.0, 0.0, 1.0, 1.0), 12, 0.9)]).per_class == {
        "stand": 1.0
    }
    assert "1 rows have a box that is inverted (x1 > x2 or y1 > y2) or outside" in caplog.text


def test_inverted_detection_takes_a_place_under_the_cap_then_is_dropped(tmp_path):
    # 49 "sit" rows at 0.9, an inverted "stand" row at 0.8, the correct "stand" row at 0.1: the
    # official heap keeps the first 50, then drops the inverted box: "stand" gets AP 0 with no
    # detection counted, and the correct row is the one dropped by the cap.
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, (0.0, 0.0, 0.01 * (i + 1), 1.0), 11, 0.9) for i in range(49)]
    det += [("v", 902, (0.0, 1.0, 1.0, 0.0), 12, 0.8), ("v", 902, FULL, 12, 0.1)]
    result = run(tmp_path, gt, det)
    assert result.per_class["stand"] == 0.0
    assert result.num_detections["stand"] == 0 and result.num_dropped_by_cap == 1


def test_strict_refuses_what_the_official_evaluator_would_score(tmp_path):
    gt = [("v", 902, FULL, 12)]
    det = [("v", 902, FULL, 12, 0.9), ("v", 902, (0.0, 0.0, 1.0, 1.2), 12, 0.8)]
    with pytest.raises(AvaCsvError, match=r"det.csv:2: box .* is outside \[0, 1\]"):
        run(tmp_path, gt, det, strict=True)
    assert run(tmp_path, gt, det).num_detections["stand"] == 2


@pytest.mark.parametrize("seed", [20, 21])
def test_matches_the_official_reference_with_inverted_and_out_of_range_boxes(
    tmp_path, caplog, seed
):
    """Rows the strict reader refuses but the official evaluator scores: inverted detection
    boxes (they still take places under the cap) and coordinates outside [0, 1] on both sides."""
    reference = reference_frame_map
    gt, det, excluded = reference.generate_ava_like(
        tmp_path,
        num_videos=3,
        frames_per_video=30,
        persons_per_frame=2.0,
        classes_per_box=30,
        seed=seed,
    )
    rng = np.random.default_rng(seed)

    def distort(path, inverted, outside):
        rows = []
        for line in path.read_text().splitlines():
            fields = line.split(",")
            box = [float(v) for v in fields[2:6]]
            roll = rng.random()
            if roll < inverted:
                box[1], box[3] = box[3], box[1]
            elif roll < inverted + outside:
                box = [box[0] - 0.2, box[1] - 0.05, box[2] + 0.3, box[3] + 0.1]
            fields[2:6] = [f"{v:.3f}" for v in box]
            rows.append(",".join(fields))
        path.write_text("\n".join(rows) + "\n")
        return len(rows)

    distort(det, inverted=0.05, outside=0.05)
    distort(gt, inverted=0.0, outside=0.1)
    labelmap = reference.EVAL_LABELMAP
    with caplog.at_level(logging.WARNING):
        ours = evaluate(labelmap, gt, det, excluded)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one per file
    assert all("rows have a box" in r.getMessage() for r in warnings)
    ref_map, ref_per_class = reference.reference_evaluate(labelmap, gt, det, excluded)
    ours_by_id = {ours.class_ids[name]: ap for name, ap in ours.per_class.items()}
    assert ours_by_id.keys() == ref_per_class.keys()
    for action_id, ap in ref_per_class.items():
        assert ours_by_id[action_id] == pytest.approx(ap, abs=1e-12), action_id
    assert ours.mAP == pytest.approx(ref_map, abs=1e-12)


def _official_runner():
    """benchmarks/official_ava_runner.py as a module (it is a script, not in the package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(
        "official_ava_runner", path / "official_ava_runner.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ties", [False, True])
def test_the_official_evaluator_itself_gives_the_same_per_class_ap(tmp_path, project_root, ties):
    """ActivityNet's get_ava_performance.py, run unchanged, on a small generated set: every
    per-class AP identical (difference 0), with unique scores and with scores rounded to 2
    decimals (many ties, ranked by numpy's unstable sort in both)."""
    runner = _official_runner()
    if not runner.DEFAULT_OFFICIAL.is_file():
        pytest.skip(f"the official evaluator is not at {runner.DEFAULT_OFFICIAL}")
    gt, det, _ = reference_frame_map.generate_ava_like(
        tmp_path, num_videos=4, frames_per_video=30, classes_per_box=30, seed=5
    )
    if ties:
        rows = [line.rsplit(",", 1) for line in det.read_text().splitlines()]
        det.write_text("".join(f"{head},{float(score):.2f}\n" for head, score in rows))
    labelmap = reference_frame_map.FULL_LABELMAP
    completed = subprocess.run(
        [
            sys.executable,
            str(project_root / "benchmarks" / "official_ava_runner.py"),
            str(runner.DEFAULT_OFFICIAL),
            "-l",
            str(labelmap),
            "-g",
            str(gt),
            "-d",
            str(det),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    official = runner.official_per_class(completed.stdout)
    # This official version (no -e) skips detections on frames absent from the ground truth;
    # with every class in the label map, those are the frames without ground truth boxes.
    ours = evaluate(labelmap, gt, det, frames_without_groundtruth="ignore").per_class
    assert ours.keys() == official.keys()
    assert {name: ours[name] - official[name] for name in ours} == dict.fromkeys(ours, 0.0)


@pytest.mark.parametrize(
    "scores",
    [
        "unit",  # detector scores: the one-sort path
        "logits",  # outside [0, 1]: the exact two-sort path
        "close",  # differences below the one-sort key's round-off
        "ties",
    ],
)
def test_rows_ordered_by_frame_then_descending_score(scores):
    rng = np.random.default_rng(7)
    frame = rng.integers(0, 60_000, 5_000)
    score = {
        "unit": rng.random(5_000),
        "logits": rng.normal(0.0, 5.0, 5_000),
        "close": 0.5 + rng.integers(0, 50, 5_000) * 1e-15,
        "ties": rng.integers(0, 3, 5_000) / 2,
    }[scores]
    order = frame_map._by_frame_then_score(frame, score)
    assert sorted(order.tolist()) == list(range(5_000))
    f, s = frame[order], score[order]
    assert (np.diff(f) >= 0).all()
    assert not ((f[1:] == f[:-1]) & (s[1:] > s[:-1])).any()
