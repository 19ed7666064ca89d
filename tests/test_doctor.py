"""The dataset doctor on a generated AVA-format set and on broken copies of it (real files)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from detection.apps.check_dataset import main
from detection.config import load_config
from detection.data.doctor import (
    PROPOSALS_HINT,
    DatasetCheckError,
    DoctorReport,
    check_dataset,
    require_healthy_dataset,
)


@pytest.fixture
def dataset(synthetic_ava, tmp_path) -> Path:
    """A private copy of the generated set (videos and annotations) that a test may break."""
    root = tmp_path / "set"
    for folder in ("videos", "annotations"):
        shutil.copytree(synthetic_ava.root / folder, root / folder)
    return root


def doctor(root: Path, *opts: str, min_boxes: int = 1) -> DoctorReport:
    cfg = load_config(None, ["DATA.PATH_TO_DATA_DIR", str(root), "MODEL.NUM_CLASSES", "5", *opts])
    return check_dataset(cfg, min_boxes=min_boxes)


def append_row(path: Path, row: str) -> int:
    """Append `row` to the CSV at `path`; returns its 1-based line number."""
    text = path.read_text()
    path.write_text(text + row + "\n")
    return len(text.splitlines()) + 1


def only(report: DoctorReport, level: str, check: str):
    found = [f for f in report.findings if f.level == level and f.check == check]
    assert len(found) == 1, report.format()
    return found[0]


def test_generated_set_passes_with_only_class_count_warnings(dataset):
    report = doctor(dataset)
    assert report.ok, report.format()
    assert {f.check for f in report.warnings} <= {"classes"}, report.format()
    text = report.format()
    assert "videos: 3 of 3 open and decode at start and end" in text
    assert "cover 2 of 2 annotated keyframes" in text
    # Every annotated class has fewer than a million boxes: each is named in one warning.
    annotated = {int(r.split(",")[6]) for r in (dataset / "annotations" / "ava_train_v2.2.csv")
                 .read_text().splitlines() if r.split(",")[6]}  # fmt: skip
    few = [f for f in doctor(dataset, min_boxes=10**6).warnings if "fewer than" in f.message]
    assert len(few) == 1 and few[0].count == len(annotated)


def test_corrupt_video_is_an_error_naming_the_file(dataset):
    video = dataset / "videos" / "syn_001.mp4"
    video.write_bytes(b"not a video at all" * 64)
    finding = only(doctor(dataset), "error", "videos")
    assert "1 of 3 videos" in finding.message
    assert str(video) in finding.examples[0]
    assert "ava_train_v2.2.csv:" in finding.examples[0]


def test_truncated_video_is_caught_by_decoding_its_end(dataset):
    video = dataset / "videos" / "syn_000.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    finding = only(doctor(dataset), "error", "videos")
    assert str(video) in finding.examples[0]


def test_timestamp_outside_the_video_names_file_and_line(dataset):
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    line = append_row(gt, "syn_000,0950,0.1,0.1,0.3,0.4,1,7")
    finding = only(doctor(dataset), "error", "timestamps")
    assert finding.count == 1
    assert finding.examples[0].startswith(f"{gt}:{line}: syn_000 second 950 is at 50 s")


def test_seconds_counted_from_zero_hint_at_the_offset(dataset):
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    append_row(gt, "syn_000,0002,0.1,0.1,0.3,0.4,1,7")
    report = doctor(dataset)
    assert "AVA.VIDEO_START_SEC 0" in only(report, "error", "timestamps").message
    assert "valid keyframes 902..1798" in only(report, "warning", "keyframes").message


def test_unknown_action_id(dataset):
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    line = append_row(gt, "syn_000,0903,0.1,0.1,0.3,0.4,6,7")
    error = only(doctor(dataset), "error", "classes")
    assert "outside 1..5 (MODEL.NUM_CLASSES)" in error.message
    assert error.examples == (f"{gt}:{line}: syn_000 second 903: id 6",)
    # With room for it in the model, the id is only missing from the label map.
    wide = doctor(dataset, "MODEL.NUM_CLASSES", "80")
    assert not [f for f in wide.errors if f.check == "classes"], wide.format()
    warning = [f for f in wide.warnings if "not in the label map" in f.message]
    assert len(warning) == 1 and warning[0].examples[0].startswith(f"{gt}:{line}:")


@pytest.mark.parametrize(
    ("box", "what"),
    [("0.1,0.2,1.5,0.4", "outside [0, 1]"), ("0.6,0.2,0.3,0.4", "inverted")],
)
def test_bad_boxes_are_errors_with_every_row_counted(dataset, box, what):
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    first = append_row(gt, f"syn_000,0903,{box},1,7")
    append_row(gt, f"syn_001,0903,{box},2,7")
    finding = only(doctor(dataset), "error", "boxes")
    assert what in finding.message and finding.count == 2
    assert finding.examples[0].startswith(f"{gt}:{first}: (")


def test_video_in_both_splits(dataset):
    val = dataset / "annotations" / "ava_val_v2.2.csv"
    line = append_row(val, "syn_000,0903,0.1,0.1,0.3,0.4,1,7")
    finding = only(doctor(dataset), "error", "splits")
    assert finding.examples[0].startswith("syn_000: train ")
    assert finding.examples[0].endswith(f"val {val}:{line}")


def test_missing_proposals_is_a_warning(dataset):
    (dataset / "annotations" / "ava_val_predicted_boxes.csv").unlink()
    report = doctor(dataset)
    assert report.ok, report.format()
    assert PROPOSALS_HINT in only(report, "warning", "proposals").message


def test_uncovered_keyframes_are_named(dataset):
    boxes = dataset / "annotations" / "ava_val_predicted_boxes.csv"
    rows = boxes.read_text().splitlines()
    second = rows[0].split(",")[1]
    boxes.write_text("".join(r + "\n" for r in rows if r.split(",")[1] != second))
    finding = only(doctor(dataset), "warning", "proposals")
    assert "1 of 2 annotated val keyframes" in finding.message
    assert f"second {int(second)}" in finding.examples[0]


def test_cli_exit_codes(dataset, tmp_path, capsys):
    assert main([str(dataset), "MODEL.NUM_CLASSES", "5"]) == 0
    assert "0 errors" in capsys.readouterr().out
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    line = append_row(gt, "syn_000,0903,0.6,0.2,0.3,0.4,1,7")
    assert main([str(dataset), "--min-boxes", "2", "MODEL.NUM_CLASSES", "5"]) == 1
    out = capsys.readouterr().out
    assert f"{gt}:{line}:" in out and "FAILED" in out
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "absent")])
    assert exit_info.value.code == 2
    assert "absent not found" in capsys.readouterr().err


def test_ground_truth_boxes_as_proposals_are_flagged(dataset):
    ann = dataset / "annotations"
    rows = [r.split(",") for r in (ann / "ava_val_v2.2.csv").read_text().splitlines()]
    oracle = {",".join(r[:6]) + ",,1.0\n" for r in rows if r[2]}
    (ann / "ava_val_predicted_boxes.csv").write_text("".join(sorted(oracle)))
    report = doctor(dataset)
    assert "are the ground-truth boxes" in only(report, "warning", "proposals").message


def test_dataset_json_offset_must_match_the_config(dataset):
    (dataset / "dataset.json").write_text(
        json.dumps({"video_start_sec": 0, "config_overrides": ["AVA.VIDEO_START_SEC", "0"]})
    )
    finding = only(doctor(dataset), "error", "keyframes")
    assert "AVA.VIDEO_START_SEC 900" in finding.message
    assert "AVA.VIDEO_START_SEC 0" in finding.message


def test_run_start_check_is_fatal_only_on_errors(dataset):
    cfg = load_config(None, ["DATA.PATH_TO_DATA_DIR", str(dataset), "MODEL.NUM_CLASSES", "5"])
    (dataset / "annotations" / "ava_val_predicted_boxes.csv").unlink()
    assert require_healthy_dataset(cfg).warnings
    gt = dataset / "annotations" / "ava_train_v2.2.csv"
    line = append_row(gt, "syn_000,0903,0.1,0.2,1.5,0.4,1,7")
    with pytest.raises(DatasetCheckError, match=re.escape(f"{gt}:{line}:")):
        require_healthy_dataset(cfg)
    # A test run reads only the val files.
    assert require_healthy_dataset(cfg, splits=["val"]).ok
