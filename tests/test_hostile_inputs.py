"""Issue 15's hostile and careless inputs, replayed through the command-line tools: an output
that is (or hard-links to) an input, colliding outputs, an unwritable output folder, duplicate
YAML keys, label maps and CSVs that would silently change results, empty ground truth, damaged
checkpoints. Each refusal is exit code 2 and one line ``error: ...`` naming the file (and the
row or key), comes before any expensive work, and leaves every input byte-identical.

The tools run in this process (`main(argv)`, the code `tools/*.py` calls), in a folder of their
own, so that torch is imported once; `test_the_entry_point_script_refuses_too` runs one case
as a real subprocess. The cases that decode videos or run a model are marked slow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_tools import CLIP, DETECTIONS, GT, LABELMAP, ROOT, TINY, assert_one_error_line, run

from detection.apps import (
    compare_results,
    eval_ava,
    eval_person_ap,
    export_model,
    extract_frames,
    import_annotations,
    make_proposals,
    test_net,
    train_net,
    visualize,
)
from detection.errors import MAX_MESSAGE_CHARS

SYNTHETIC = str(ROOT / "configs" / "synthetic" / "SLOWFAST_TINY.yaml")
CPU = ["DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "0"]
# The annotation file names configs/synthetic/SLOWFAST_TINY.yaml reads (AVA.*).
LABELMAP_FILE = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
GT_FILE = "ava_val_v2.2.csv"
EXCLUSION_FILE = "ava_val_excluded_timestamps_v2.2.csv"
IMPORT_CSV = "video,time_s,x1,y1,x2,y2,actions\nclip,1,0.1,0.1,0.5,0.9,stand\n"

Main = Callable[[list[str] | None], object]


def call(main: Main, argv: list[str], capsys) -> subprocess.CompletedProcess:
    """Run a tool's `main(argv)` as its script would, with what it printed and its exit code."""
    try:
        returned = main(argv)
        code = returned if isinstance(returned, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_inputs(folder: Path) -> None:
    """gt.csv, det.csv and lm.pbtxt (see tests/test_tools.py) in `folder`."""
    (folder / "gt.csv").write_text(GT)
    (folder / "det.csv").write_text(DETECTIONS)
    (folder / "lm.pbtxt").write_text(LABELMAP)


def write_annotations(root: Path, groundtruth: str = GT) -> Path:
    """A dataset folder with the evaluation files of the synthetic config (2 classes, ground
    truth of video v1, no excluded timestamp) and no video; returns DATA.PATH_TO_DATA_DIR."""
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    (annotations / LABELMAP_FILE).write_text(LABELMAP)
    (annotations / GT_FILE).write_text(groundtruth)
    (annotations / EXCLUSION_FILE).write_text("")
    return root


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a 0500 folder, or where that does not stop
    us (root ignores permission bits) /sys; skips the test when neither is refused. Probed with
    a real file, as `detection.utils.paths.check_writable_dir` does."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    for folder in (locked, Path("/sys")):
        if not folder.is_dir():
            continue
        try:
            fd, name = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(fd)
        os.unlink(name)
    pytest.skip("every folder is writable here")


@dataclass
class Case:
    """A tool run in a fresh folder: `setup(folder)` writes its files and returns the tool's
    arguments; `inputs` (relative to the folder) must not change; the one error line must
    match `pattern`; `absent` are paths the refused run must not have created."""

    main: Main
    setup: Callable[[Path], list[str]]
    pattern: str
    inputs: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def _visualize_out_is_video(d: Path) -> list[str]:
    shutil.copy(CLIP, d / "v.mp4")
    return ["--video", "v.mp4", "--out", "v.mp4", "--gt", "gt.csv", "--video-id", "v1"]


def _visualize_out_hard_links_video(d: Path) -> list[str]:
    shutil.copy(CLIP, d / "v.mp4")
    os.link(d / "v.mp4", d / "o.mp4")
    return ["--video", "v.mp4", "--out", "o.mp4", "--gt", "gt.csv", "--video-id", "v1"]


def _compare_table_is_groundtruth(d: Path) -> list[str]:
    return ["det.csv", "det.csv", "-l", "lm.pbtxt", "-g", "gt.csv", "--table-csv", "gt.csv"]


def _person_ap_json_is_detections(d: Path) -> list[str]:
    return ["-g", "gt.csv", "-d", "det.csv", "--output-json", "det.csv"]


def _eval_ava_outputs_collide(d: Path) -> list[str]:
    (d / "sub").mkdir()
    return ["-l", "lm.pbtxt", "-g", "gt.csv", "-d", "det.csv"] + [
        "--output-json",
        "r.json",
        "--table-csv",
        "./sub/../r.json",
    ]


def _test_net_detections_are_the_box_list(d: Path) -> list[str]:
    # An earlier run's detections used as this run's person boxes.
    (d / "out").mkdir()
    (d / "out" / "detections.csv").write_text(DETECTIONS)
    return ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", "out"] + [
        "TEST.CHECKPOINT_FILE_PATH",
        "w.pyth",
        "AVA.TEST_PREDICT_BOX_LISTS",
        f"['{d / 'out' / 'detections.csv'}']",
        *CPU,
    ]


def _test_net_empty_groundtruth(d: Path) -> list[str]:
    write_annotations(d / "ds", groundtruth="")
    return ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", "out"] + [
        "TEST.CHECKPOINT_FILE_PATH",
        "w.pyth",
        *CPU,
    ]


def _train_net_checkpoint_replaces_finetuning_weights(d: Path) -> list[str]:
    (d / "out" / "checkpoints").mkdir(parents=True)
    (d / "out" / "checkpoints" / "checkpoint_epoch_00001.pyth").write_bytes(b"weights")
    return ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", "out"] + [
        "TRAIN.AUTO_RESUME",
        "False",
        "SOLVER.MAX_EPOCH",
        "2",
        "TRAIN.CHECKPOINT_FILE_PATH",
        "out/checkpoints/checkpoint_epoch_00001.pyth",
        *CPU,
    ]


def _export_output_is_weights(d: Path) -> list[str]:
    (d / "w.onnx").write_bytes(b"weights")
    return ["--config", TINY, "--weights", "w.onnx", "--output", "w.onnx"]


def _export_output_hard_links_config(d: Path) -> list[str]:
    base = ROOT / "configs" / "test"
    text = (base / "SLOWFAST_TINY.yaml").read_text().replace("../", f"{base.parent}/")
    (d / "c.yaml").write_text(text)
    os.link(d / "c.yaml", d / "o.onnx")
    return ["--config", "c.yaml", "--output", "o.onnx"]


def _extract_ids_are_a_frame_list(d: Path) -> list[str]:
    (d / "videos").mkdir()
    (d / "out" / "frame_lists").mkdir(parents=True)
    (d / "out" / "frame_lists" / "val.csv").write_text("v1\n")
    return ["--videos", "videos", "--output", "out", "--val-ids", "out/frame_lists/val.csv"]


def _import_output_holds_the_inputs(d: Path) -> list[str]:
    (d / "ds" / "videos").mkdir(parents=True)
    shutil.copy(CLIP, d / "ds" / "videos" / "clip.mp4")
    (d / "ds" / "ann.csv").write_text(IMPORT_CSV)
    return ["--format", "csv", "ds/ann.csv", "--videos", "ds/videos", "--output", "ds"] + [
        "--overwrite",
        "--box-units",
        "normalized",
    ]


def _import_output_is_the_input(d: Path) -> list[str]:
    (d / "videos").mkdir()
    (d / "ann.csv").write_text(IMPORT_CSV)
    return ["--format", "csv", "ann.csv", "--videos", "videos", "--output", "ann.csv"] + [
        "--overwrite"
    ]


def _proposals_output_is_the_boxes_read(d: Path) -> list[str]:
    (d / "videos").mkdir()
    shutil.copy(CLIP, d / "videos" / "v1.mp4")
    (d / "boxes.csv").write_text(DETECTIONS)
    return ["--videos", "videos", "--output", "boxes.csv", "--detector", "csv", "--quiet"] + [
        "DEMO.PREDICTED_BOXES_CSV",
        "boxes.csv",
        "DEVICE",
        "cpu",
    ]


def _duplicate_yaml_key(d: Path) -> list[str]:
    (d / "dup.yaml").write_text(f"_BASE_: {TINY}\nMODEL:\n  NUM_CLASSES: 5\n  NUM_CLASSES: 7\n")
    return ["--config", "dup.yaml", "OUTPUT_DIR", "out"]


def _duplicate_yaml_key_in_base(d: Path) -> list[str]:
    (d / "base.yaml").write_text("SOLVER:\n  BASE_LR: 0.1\nSOLVER:\n  MAX_EPOCH: 3\n")
    (d / "child.yaml").write_text("_BASE_: base.yaml\nMODEL:\n  NUM_CLASSES: 5\n")
    return ["--config", "child.yaml", "OUTPUT_DIR", "out"]


def _labelmap_with_a_name_twice(d: Path) -> list[str]:
    (d / "lm2.pbtxt").write_text(LABELMAP + 'item {\n  name: "stand"\n  id: 3\n}\n')
    return ["det.csv", "det.csv", "-l", "lm2.pbtxt", "-g", "gt.csv"]


def _empty_groundtruth(d: Path) -> list[str]:
    (d / "empty.csv").write_text("")
    return ["det.csv", "det.csv", "-l", "lm.pbtxt", "-g", "empty.csv"]


def _empty_groundtruth_person_ap(d: Path) -> list[str]:
    (d / "empty.csv").write_text("")
    return ["-g", "empty.csv", "-d", "det.csv"]


def _leading_space_video_id(d: Path) -> list[str]:
    (d / "sp.csv").write_text(GT.replace("v1,0903", " v1,0903"))
    return ["det.csv", "det.csv", "-l", "lm.pbtxt", "-g", "sp.csv"]


def _not_utf8(d: Path) -> list[str]:
    (d / "bin.csv").write_bytes(GT.encode() + b"v1,0904,0.1,0.2,0.5,0.9,1,\xff\n")
    return ["-g", "bin.csv", "-d", "det.csv"]


def _huge_offending_line(d: Path) -> list[str]:
    (d / "big.csv").write_text(GT + "v1,0904," + "x" * 10_000_000 + ",0.2,0.5,0.9,1,0\n")
    return ["det.csv", "det.csv", "-l", "lm.pbtxt", "-g", "big.csv"]


CASES = {
    "visualize-out-is-the-video": Case(
        visualize.main,
        _visualize_out_is_video,
        r"--out v\.mp4 is the input --video",
        ["v.mp4", "gt.csv"],
    ),
    "visualize-out-hard-links-the-video": Case(
        visualize.main,
        _visualize_out_hard_links_video,
        r"--out o\.mp4 is the input --video \(v\.mp4\)",
        ["v.mp4"],
    ),
    "compare_results-table-is-the-groundtruth": Case(
        compare_results.main,
        _compare_table_is_groundtruth,
        r"--table-csv gt\.csv is the input --groundtruth",
        ["gt.csv", "det.csv"],
    ),
    "eval_person_ap-json-is-the-detections": Case(
        eval_person_ap.main,
        _person_ap_json_is_detections,
        r"--output-json det\.csv is the input --detections",
        ["det.csv", "gt.csv"],
    ),
    "eval_ava-two-outputs-are-one-file": Case(
        eval_ava.main,
        _eval_ava_outputs_collide,
        r"r\.json and .*r\.json are the same file",
        ["gt.csv", "det.csv"],
        ["r.json"],
    ),
    "test_net-detections-are-the-box-list": Case(
        test_net.main,
        _test_net_detections_are_the_box_list,
        r"OUTPUT_DIR/detections\.csv .* is the input AVA\.TEST_PREDICT_BOX_LISTS\[0\]",
        ["out/detections.csv"],
        ["out/log.jsonl", "out/metrics.json"],
    ),
    "test_net-empty-groundtruth": Case(
        test_net.main,
        _test_net_empty_groundtruth,
        rf"ds/annotations/{re.escape(GT_FILE)} has no ground-truth box",
        [f"ds/annotations/{GT_FILE}"],
        ["out"],
    ),
    "train_net-checkpoint-replaces-the-finetuning-weights": Case(
        train_net.main,
        _train_net_checkpoint_replaces_finetuning_weights,
        r"checkpoint of epoch 1 .*checkpoint_epoch_00001\.pyth is the input "
        r"TRAIN\.CHECKPOINT_FILE_PATH",
        ["out/checkpoints/checkpoint_epoch_00001.pyth"],
        ["out/log.jsonl"],
    ),
    "export_model-output-is-the-weights": Case(
        export_model.main,
        _export_output_is_weights,
        r"--output w\.onnx is the input --weights",
        ["w.onnx"],
    ),
    "export_model-output-hard-links-the-config": Case(
        export_model.main,
        _export_output_hard_links_config,
        r"--output o\.onnx is the input --config \(c\.yaml\)",
        ["c.yaml"],
    ),
    "extract_frames-frame-list-is-the-id-list": Case(
        extract_frames.main,
        _extract_ids_are_a_frame_list,
        r"val frame list out/frame_lists/val\.csv is the input --val-ids",
        ["out/frame_lists/val.csv"],
        ["out/frames"],
    ),
    "import_annotations-dataset-holds-the-inputs": Case(
        import_annotations.main,
        _import_output_holds_the_inputs,
        r"replacing --output ds would destroy the input INPUT ds/ann\.csv",
        ["ds/ann.csv", "ds/videos/clip.mp4"],
    ),
    "import_annotations-dataset-is-the-input": Case(
        import_annotations.main,
        _import_output_is_the_input,
        r"replacing --output ann\.csv would destroy the input INPUT ann\.csv",
        ["ann.csv"],
    ),
    "make_proposals-output-is-the-boxes-read": Case(
        make_proposals.main,
        _proposals_output_is_the_boxes_read,
        r"--output boxes\.csv is the input DEMO\.PREDICTED_BOXES_CSV",
        ["boxes.csv"],
    ),
    "test_net-duplicate-yaml-key": Case(
        test_net.main,
        _duplicate_yaml_key,
        r"dup\.yaml:4: MODEL\.NUM_CLASSES given twice \(first on line 3\)",
        ["dup.yaml"],
        ["out"],
    ),
    "train_net-duplicate-yaml-key-in-base": Case(
        train_net.main,
        _duplicate_yaml_key_in_base,
        r"base\.yaml:3: SOLVER given twice \(first on line 1\)",
        ["base.yaml", "child.yaml"],
        ["out"],
    ),
    "compare_results-labelmap-name-twice": Case(
        compare_results.main,
        _labelmap_with_a_name_twice,
        r"lm2\.pbtxt:9: class name 'stand' defined twice \(first on line 1\)",
        ["lm2.pbtxt"],
    ),
    "compare_results-empty-groundtruth": Case(
        compare_results.main,
        _empty_groundtruth,
        r"empty\.csv has no ground-truth box",
        ["empty.csv"],
    ),
    "eval_person_ap-empty-groundtruth": Case(
        eval_person_ap.main,
        _empty_groundtruth_person_ap,
        r"empty\.csv has no ground-truth person box",
        ["empty.csv"],
    ),
    "compare_results-leading-space-video-id": Case(
        compare_results.main,
        _leading_space_video_id,
        r"sp\.csv:3: video id ' v1' has leading or trailing whitespace",
        ["sp.csv"],
    ),
    "eval_person_ap-not-utf8": Case(
        eval_person_ap.main,
        _not_utf8,
        r"bin\.csv:4: not UTF-8",
        ["bin.csv"],
    ),
    "compare_results-huge-offending-line": Case(
        compare_results.main,
        _huge_offending_line,
        r"big\.csv:4: x1 'x+\.\.\.' is not a number",
        ["big.csv"],
    ),
}


def replay(case: Case, folder: Path, monkeypatch, capsys) -> subprocess.CompletedProcess:
    """Run `case` in `folder`; assert that its inputs were left as they were."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    write_inputs(folder)
    argv = case.setup(folder)
    before = {name: digest(folder / name) for name in case.inputs}
    result = call(case.main, argv, capsys)
    assert {name: digest(folder / name) for name in case.inputs} == before
    for name in case.absent:
        assert not (folder / name).exists(), name
    return result


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_refused_in_one_line_leaving_inputs_intact(
    name, tmp_path, monkeypatch, capsys
):
    result = replay(CASES[name], tmp_path / "case", monkeypatch, capsys)
    assert_one_error_line(result, CASES[name].pattern)
    assert len(result.stderr.splitlines()[0]) <= len("error: ") + MAX_MESSAGE_CHARS


def _test_net_out(folder: Path) -> list[str]:
    return ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", str(folder)] + [
        "TEST.CHECKPOINT_FILE_PATH",
        "w.pyth",
        *CPU,
    ]


def _train_net_out(folder: Path) -> list[str]:
    return ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", str(folder)] + CPU


UNWRITABLE = {
    # tool: (main, arguments given the unwritable output folder, the option named)
    "test_net": (test_net.main, _test_net_out, "OUTPUT_DIR"),
    "train_net": (train_net.main, _train_net_out, "OUTPUT_DIR"),
    "extract_frames": (
        extract_frames.main,
        lambda out: ["--videos", "videos", "--output", str(out / "dataset")],
        "frame list",
    ),
    "visualize": (
        visualize.main,
        lambda out: ["--video", CLIP, "--out", str(out / "o.png"), "--gt", "gt.csv"],
        "--out",
    ),
    "eval_person_ap": (
        eval_person_ap.main,
        lambda out: ["-g", "gt.csv", "-d", "det.csv", "--output-json", str(out / "r.json")],
        "--output-json",
    ),
}


@pytest.mark.parametrize("tool", UNWRITABLE)
def test_unwritable_output_folder_is_refused_before_any_work(tool, tmp_path, monkeypatch, capsys):
    locked = unwritable_folder(tmp_path)
    main, arguments, option = UNWRITABLE[tool]
    work = tmp_path / "work"
    work.mkdir()
    (work / "videos").mkdir()
    write_annotations(work / "ds")
    monkeypatch.chdir(work)
    write_inputs(work)
    try:
        result = call(main, arguments(locked), capsys)
    finally:
        if locked != Path("/sys"):
            locked.chmod(0o700)
    assert_one_error_line(result, rf"{re.escape(option)}.*cannot write in {re.escape(str(locked))}")


def test_exclusions_with_a_bom_exclude_their_keyframes(tmp_path, monkeypatch, capsys):
    """The ground truth has persons at seconds 902 and 903; excluding 903 by a file that starts
    with a UTF-8 BOM leaves what excluding it by a plain file leaves, and one keyframe."""
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbfv1,0903\n")
    (tmp_path / "plain.csv").write_text("v1,0903\n")
    figures = {}
    for name, extra in [("none", []), ("bom", ["-e", "bom.csv"]), ("plain", ["-e", "plain.csv"])]:
        argv = ["-g", "gt.csv", "-d", "det.csv", *extra, "--output-json", f"{name}.json"]
        result = call(eval_person_ap.main, argv, capsys)
        assert result.returncode == 0, result.stderr
        figures[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert figures["bom"] == figures["plain"]
    assert figures["none"]["num_frames"] == 2
    assert figures["bom"]["num_frames"] == 1
    assert figures["bom"]["num_groundtruth"] == figures["none"]["num_groundtruth"] - 1


def test_a_truncated_checkpoint_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)
    write_annotations(tmp_path / "ds")
    torch.save({"model_state": {"w": torch.ones(4096)}}, tmp_path / "full.pyth")
    data = (tmp_path / "full.pyth").read_bytes()
    (tmp_path / "cut.pyth").write_bytes(data[: len(data) // 2])
    argv = ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "ds", "OUTPUT_DIR", "out"]
    result = call(test_net.main, [*argv, "TEST.CHECKPOINT_FILE_PATH", "cut.pyth", *CPU], capsys)
    assert_one_error_line(result, r"cut\.pyth: truncated or damaged checkpoint")
    assert not (tmp_path / "out").exists()


def test_the_entry_point_script_refuses_too(tmp_path):
    """The same refusal through tools/visualize.py in its own process."""
    shutil.copy(CLIP, tmp_path / "v.mp4")
    (tmp_path / "gt.csv").write_text(GT)
    before = digest(tmp_path / "v.mp4")
    argv = ["--video", "v.mp4", "--out", "./v.mp4", "--gt", "gt.csv", "--video-id", "v1"]
    result = run("visualize", argv, tmp_path)
    assert_one_error_line(result, r"--out v\.mp4 is the input --video")
    assert digest(tmp_path / "v.mp4") == before


@pytest.mark.slow
def test_missing_groundtruth_stops_training_before_anything_is_written(
    synthetic_ava, tmp_path, monkeypatch, capsys
):
    data = tmp_path / "ds"
    shutil.copytree(synthetic_ava.root / "annotations", data / "annotations")
    (data / "videos").symlink_to(synthetic_ava.root / "videos")
    (data / "annotations" / GT_FILE).unlink()
    monkeypatch.chdir(tmp_path)
    argv = ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", str(data), "OUTPUT_DIR", "out"]
    result = call(train_net.main, [*argv, "SOLVER.MAX_EPOCH", "1", *CPU], capsys)
    assert_one_error_line(result, rf"ds/annotations/{re.escape(GT_FILE)}\b.*not found")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_nan_weights_are_one_line_naming_the_checkpoint(
    synthetic_ava, tmp_path, monkeypatch, capsys
):
    import torch

    from detection.config import load_config
    from detection.models import build_model

    state = build_model(load_config(SYNTHETIC)).state_dict()
    nan = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    torch.save(nan, tmp_path / "nan.pyth")
    monkeypatch.chdir(tmp_path)
    argv = ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root)]
    argv += ["OUTPUT_DIR", "out", "TEST.CHECKPOINT_FILE_PATH", "nan.pyth", *CPU]
    result = call(test_net.main, argv, capsys)
    assert_one_error_line(result, r"nan\.pyth")
