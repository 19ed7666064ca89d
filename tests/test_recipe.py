"""README's recipe for one's own actions, end to end through the real command-line tools, each a
subprocess: generated videos with their CVAT export (custom class ids 3, 7, 8, 12, 15 and names
of their own) -> tools/import_annotations.py -> tools/check_dataset.py ->
tools/make_proposals.py (the csv person detector on the generator's detector boxes: no weights)
-> tools/train_net.py fine-tuning from a checkpoint whose head has another size -> test_net.py
-> eval_ava.py -> demo_net.py; and the VIA export through import and check.

The fine-tuned model must beat the class-share baseline on the held-out videos: the same person
boxes, each scored for every class with that class's share of the training boxes (what a model
that learned nothing about the pixels can do). The per-class AP of both is printed (`-s`).
The "pretrained" checkpoint comes from a short training on the generator's AVA-layout set of
the same videos (5 classes, AVA's 900-second convention, the same train/val split), as a user's
would come from AVA (80 classes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from detection.ava.csv_io import read_ava_csv, write_detections
from detection.ava.labelmap import read_labelmap
from detection.data.video import VideoReader

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"
NUM_VIDEOS, NUM_VAL, SECONDS, SEED = 8, 2, 6, 3
CUSTOM_IDS = [3, 7, 8, 12, 15]
LABEL_MAP = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
# Smaller crops and no loader worker: the recipe's budget is a few minutes of CPU.
SMALL = [
    "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
    "DATA.TRAIN_CROP_SIZE", "64",
    "DATA.TEST_CROP_SIZE", "72",
    "DATA_LOADER.NUM_WORKERS", "0",
    "DEVICE", "cpu",
]  # fmt: skip
# Fine-tuning: 6 train videos x 6 keyframes = 36 clips, 9 steps of 4 per epoch.
PRETRAIN_EPOCHS, FINETUNE_EPOCHS, FINETUNE_BATCH = 1, 6, 4


def _tool(name: str, *args: object, returncode: int = 0) -> str:
    """Run tools/`name` with `args`; its stdout and stderr, after checking its exit code."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=3600,  # a guard against a hang, not a speed test: the machine may be shared
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == returncode, f"{name} exited {proc.returncode}:\n{output[-6000:]}"
    return output


def _overrides(dataset: Path) -> list[str]:
    """The config overrides the import recorded in dataset.json (and printed)."""
    return json.loads((dataset / "dataset.json").read_text())["config_overrides"]


def _import_and_check(fmt: str, inputs: list[Path], gen: Path, out: Path) -> str:
    val = [f"syn_{i:03d}" for i in range(NUM_VIDEOS - NUM_VAL, NUM_VIDEOS)]
    printed = _tool(
        "import_annotations.py", "--format", fmt, *inputs, "--videos", gen / "videos",
        "--output", out, "--labelmap", gen / "custom/labelmap.pbtxt", "--val-videos", *val,
        "--link",
    )  # fmt: skip
    assert "malformed: none" in printed and "skipped: nothing" in printed
    assert read_labelmap(out / "annotations" / LABEL_MAP).ids == CUSTOM_IDS
    for split, videos in (("train", NUM_VIDEOS - NUM_VAL), ("val", NUM_VAL)):
        gt = read_ava_csv(out / f"annotations/ava_{split}_v2.2.csv", kind="groundtruth")
        assert gt["video_id"].nunique() == videos
        assert sorted(gt["timestamp"].unique()) == list(range(SECONDS))
        assert set(gt["action_id"]) <= set(CUSTOM_IDS)
    report = _tool("check_dataset.py", out)
    assert "0 errors" in report and "the ground-truth boxes" in report  # stand-in proposals
    return printed


def _frame_map(detections: Path, dataset: Path, output_json: Path) -> dict:
    _tool(
        "eval_ava.py", "-l", dataset / "annotations" / LABEL_MAP,
        "-g", dataset / "annotations/ava_val_v2.2.csv", "-d", detections,
        "-e", dataset / "annotations/ava_val_excluded_timestamps_v2.2.csv",
        "--output-json", output_json,
    )  # fmt: skip
    return json.loads(output_json.read_text())


def _class_share_baseline(detections: Path, dataset: Path, out: Path) -> None:
    """The model's boxes, every class scored with its share of the training boxes."""
    train = read_ava_csv(dataset / "annotations/ava_train_v2.2.csv", kind="groundtruth")
    boxes_per_class = Counter(
        int(a)
        for a in train.drop_duplicates(["video_id", "timestamp", "person_id", "action_id"])[
            "action_id"
        ]
    )
    num_boxes = len(train.drop_duplicates(["video_id", "timestamp", "person_id"]))
    scored = read_ava_csv(detections, kind="detections")
    boxes = scored.drop_duplicates(["video_id", "timestamp", "x1", "y1", "x2", "y2"])
    share = [boxes_per_class[c] / num_boxes for c in CUSTOM_IDS]
    write_detections(
        out,
        boxes["video_id"].tolist(),
        boxes["timestamp"].tolist(),
        boxes[["x1", "y1", "x2", "y2"]].to_numpy(),
        pd.DataFrame([share] * len(boxes)).to_numpy(),
        CUSTOM_IDS,
    )


def test_own_actions_recipe_from_cvat_export_to_demo(tmp_path):
    gen, dataset = tmp_path / "generated", tmp_path / "mine"
    _tool(
        "make_synthetic_ava.py", "--output", gen, "--num-videos", NUM_VIDEOS, "--num-val",
        NUM_VAL, "--seconds", SECONDS, "--seed", SEED, "--annotation-formats", "cvat,via",
    )  # fmt: skip

    # 1-2. Import the CVAT export (one XML per video) and check the set; VIA the same way.
    xml_files = sorted((gen / "custom/cvat").glob("*.xml"))
    assert len(xml_files) == NUM_VIDEOS
    printed = _import_and_check("cvat", xml_files, gen, dataset)
    overrides = _overrides(dataset)
    assert (
        "MODEL.NUM_CLASSES 15" in printed
        and overrides[overrides.index("MODEL.NUM_CLASSES") + 1] == "15"
    )
    _import_and_check("via", [gen / "custom/via/project.json"], gen, tmp_path / "mine_via")
    for split in ("train", "val"):
        name = f"annotations/ava_{split}_v2.2.csv"
        cvat, via = (
            read_ava_csv(d / name, kind="groundtruth") for d in (dataset, tmp_path / "mine_via")
        )
        assert cvat.drop(columns=["x1", "y1", "x2", "y2"]).equals(
            via.drop(columns=["x1", "y1", "x2", "y2"])
        )
        box_gap = (cvat[["x1", "y1", "x2", "y2"]] - via[["x1", "y1", "x2", "y2"]]).abs()
        assert float(box_gap.max().max()) <= 1.1e-3

    # 3. Person boxes for testing from a detector (the generator's detector boxes, csv backend).
    config = ["--config", CONFIG, *overrides]
    detector = ["--detector", "csv", "DEMO.PREDICTED_BOXES_CSV", gen / "custom/person_boxes.csv"]
    printed = _tool("make_proposals.py", *config, "--split", "val", *detector, "--quiet")
    proposals = read_ava_csv(dataset / "annotations/ava_val_predicted_boxes.csv", kind="boxes")
    val_gt = read_ava_csv(dataset / "annotations/ava_val_v2.2.csv", kind="groundtruth")
    keyframes = set(zip(val_gt["video_id"], val_gt["timestamp"], strict=True))
    assert set(zip(proposals["video_id"], proposals["timestamp"], strict=True)) == keyframes
    assert (proposals["score"] >= 0.8).all()  # DEMO.PERSON_SCORE_THRESH: false positives dropped
    use_proposals = [*config, "AVA.TEST_PREDICT_BOX_LISTS", "['ava_val_predicted_boxes.csv']"]
    report = _tool("check_dataset.py", dataset, *use_proposals, "--min-boxes", "5")
    assert "0 errors, 0 warnings" in report
    assert f"cover {len(keyframes)} of {len(keyframes)} annotated keyframes" in report

    # 4. A checkpoint with a 5-class head (trained on the generator's AVA-layout set of the
    # same train videos), then fine-tuning on the custom classes: the head is re-initialized.
    pretrained = tmp_path / "pretrained"
    _tool(
        "train_net.py", "--config", CONFIG, "DATA.PATH_TO_DATA_DIR", gen, "OUTPUT_DIR",
        pretrained, "SOLVER.MAX_EPOCH", PRETRAIN_EPOCHS, "TEST.ENABLE", "False", *SMALL,
    )  # fmt: skip
    checkpoint = pretrained / f"checkpoints/checkpoint_epoch_{PRETRAIN_EPOCHS:05d}.pyth"
    run = tmp_path / "finetuned"
    log = _tool(
        "train_net.py", *use_proposals, *SMALL, "OUTPUT_DIR", run,
        "SOLVER.MAX_EPOCH", FINETUNE_EPOCHS, "TRAIN.BATCH_SIZE", FINETUNE_BATCH,
        "TRAIN.CHECKPOINT_FILE_PATH", checkpoint, "TEST.ENABLE", "False",
    )  # fmt: skip
    assert "head.projection: checkpoint 5 classes, model 15: re-initialized" in log
    weights = run / f"checkpoints/checkpoint_epoch_{FINETUNE_EPOCHS:05d}.pyth"
    assert weights.is_file()

    # 5-6. Test the fine-tuned weights on the held-out videos; score them and the baseline.
    _tool("test_net.py", *use_proposals, *SMALL, "OUTPUT_DIR", run)
    detections = read_ava_csv(run / "detections.csv", kind="detections")
    # One score per label-map class (as PySlowFast writes them), not per head column (1..15).
    assert sorted(detections["action_id"].unique()) == sorted(CUSTOM_IDS)
    assert len(detections) == len(proposals) * len(CUSTOM_IDS)
    model = _frame_map(run / "detections.csv", dataset, tmp_path / "model_map.json")
    tested = json.loads((run / "metrics.json").read_text())["official"]
    assert model["mAP"] == pytest.approx(tested["mAP"])
    _class_share_baseline(run / "detections.csv", dataset, tmp_path / "baseline.csv")
    baseline = _frame_map(tmp_path / "baseline.csv", dataset, tmp_path / "baseline_map.json")
    print(f"\n{'class':<14}{'model AP':>10}{'share AP':>10}")
    for name in model["per_class"]:
        print(f"{name:<14}{model['per_class'][name]:>10.3f}{baseline['per_class'][name]:>10.3f}")
    print(f"{'mAP':<14}{model['mAP']:>10.3f}{baseline['mAP']:>10.3f}")
    # Classes with held-out boxes (2 val videos may lack one).
    assert 3 <= len(model["per_class"]) and set(model["per_class"]) <= {
        "stand still",
        "stroll",
        "hop",
        "shake",
        "blink",
    }
    assert model["mAP"] > baseline["mAP"]

    # 7. The demo on a held-out video with the fine-tuned weights and the custom label map.
    video = f"syn_{NUM_VIDEOS - 1:03d}"
    demo = tmp_path / "demo" / f"{video}_actions.mp4"
    _tool(
        "demo_net.py", "--config", CONFIG, "--input", dataset / f"videos/{video}.mp4",
        "--output", demo, "--detector", "csv", "--quiet",
        # KEY VALUE pairs last: everything after the first one is an override.
        "DEMO.PREDICTED_BOXES_CSV", gen / "custom/person_boxes.csv", "MODEL.WEIGHTS", weights,
        "MODEL.NUM_CLASSES", "15", "DEMO.LABEL_FILE_PATH", dataset / "annotations" / LABEL_MAP,
        *SMALL,
    )  # fmt: skip
    with VideoReader(demo) as reader:
        assert reader.num_frames_at(30) == SECONDS * 30
    shown = read_ava_csv(demo.with_suffix(".csv"), kind="detections")
    # Every head column in the CSV, like test_net's; the JSON names the label map's classes.
    assert set(shown["action_id"]) == set(range(1, 16))
    assert set(shown["timestamp"]) == set(range(SECONDS))
    names = json.dumps(json.loads(demo.with_suffix(".json").read_text()))
    assert any(n in names for n in ("stand still", "stroll", "hop", "shake", "blink"))
