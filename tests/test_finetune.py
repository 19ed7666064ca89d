"""Training on your own classes: losses (engine/losses.py), the start-of-training checks and
fine-tuning from a checkpoint with another head (engine/trainer.py), on real tiny models, real
PySlowFast-format checkpoints and the generated AVA-format set."""

import logging
import math
from pathlib import Path

import pytest
import torch

from detection.ava.labelmap import LabelMap
from detection.checkpoint import CheckpointError
from detection.config import load_config
from detection.data.synthetic import ACTION_NAMES
from detection.engine.losses import (
    LabelError,
    build_loss,
    global_bce_loss,
    global_focal_loss,
    global_softmax_loss,
)
from detection.engine.metrics_log import read_log
from detection.engine.trainer import (
    MIN_BOXES_PER_CLASS,
    MIN_TRAIN_STEPS,
    TrainingSetupError,
    check_labelmap_fits_head,
    initialize_from_checkpoint,
    schedule_warning,
    train,
)
from detection.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SLOW = str(ROOT / "configs/synthetic/SLOW_TINY.yaml")
SMALL_RUN = [
    "DEVICE", "cpu",
    "SOLVER.MAX_EPOCH", "1",
    "TRAIN.BATCH_SIZE", "2",
    "TEST.ENABLE", "False",
    "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
    "DATA.TRAIN_CROP_SIZE", "64",
    "DATA.TEST_CROP_SIZE", "64",
    "DATA_LOADER.NUM_WORKERS", "0",
    "LOG_PERIOD", "1",
]  # fmt: skip

LN2 = math.log(2.0)
# Logits 0 and ln 3: sigmoid 1/2 and 3/4.
LOGITS = torch.tensor([[0.0, math.log(3.0)]])


# --- losses on hand-computed inputs -----------------------------------------------------------


def test_bce_is_the_mean_over_entries():
    # -log(1/2) for the positive, -log(1 - 3/4) for the negative.
    loss = global_bce_loss(LOGITS, torch.tensor([[1.0, 0.0]]))
    assert loss.item() == pytest.approx((LN2 + 2 * LN2) / 2, rel=1e-6)


def test_focal_loss_weights_and_focuses_each_entry():
    labels = torch.tensor([[1.0, 0.0]])
    # Positive p_t = 1/2: alpha 0.25 x (1/2)^2 x ln 2; negative p_t = 1/4: 0.75 x (3/4)^2 x ln 4.
    expected = (0.25 * 0.25 * LN2 + 0.75 * 0.5625 * 2 * LN2) / 2
    loss = global_focal_loss(LOGITS, labels, alpha=0.25, gamma=2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    plain = global_focal_loss(LOGITS, labels, alpha=-1.0, gamma=0.0)
    assert plain.item() == pytest.approx(global_bce_loss(LOGITS, labels).item(), rel=1e-6)


def test_softmax_is_the_mean_cross_entropy_over_boxes():
    logits = torch.tensor([[0.0, math.log(3.0)], [LN2, 0.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Box 0: -log(1 / (1 + 3)); box 1: -log(2 / (2 + 1)).
    expected = (math.log(4.0) + math.log(1.5)) / 2
    assert global_softmax_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ([[1.0, 0.0], [1.0, 1.0]], r"box 1 of the batch has 2 \(\[1, 2\]\)"),
        ([[0.0, 0.0], [0.0, 1.0]], r"box 0 of the batch has 0 \(\[\]\)"),
    ],
)
def test_softmax_refuses_boxes_without_exactly_one_label(labels, expected):
    with pytest.raises(
        LabelError, match=r"'softmax' needs exactly one action per box; " + expected
    ):
        global_softmax_loss(torch.zeros(2, 2), torch.tensor(labels))


def test_build_loss_reads_the_focal_keys():
    cfg = load_config(None, ["MODEL.LOSS_FUNC", "focal", "MODEL.FOCAL_ALPHA", "-1.0"])
    cfg.defrost()
    cfg.MODEL.FOCAL_GAMMA = 0.0
    labels = torch.tensor([[1.0, 0.0]])
    assert build_loss(cfg)(LOGITS, labels).item() == pytest.approx(
        global_bce_loss(LOGITS, labels).item(), rel=1e-6
    )


# --- start-of-training checks ------------------------------------------------------------------


def test_a_label_map_id_beyond_the_head_is_an_error_naming_both():
    labelmap = LabelMap(names={3: "wave", 17: "jump", 42: "fall"})
    with pytest.raises(
        TrainingSetupError, match=r"mine\.pbtxt has action id 42 .*NUM_CLASSES is 17"
    ):
        check_labelmap_fits_head(labelmap, 17, "mine.pbtxt")


def test_a_head_much_wider_than_the_label_map_is_only_a_warning():
    labelmap = LabelMap(names={3: "wave", 17: "jump", 42: "fall"})
    warning = check_labelmap_fits_head(labelmap, 42, "mine.pbtxt")
    assert "42 columns" in warning and "3 classes" in warning and "the 39 others" in warning
    assert check_labelmap_fits_head(LabelMap(names={i: str(i) for i in range(1, 61)}), 80, "") == ""


def test_schedule_warning_names_steps_warmup_and_rare_classes():
    cfg = load_config(SLOW, ["SOLVER.MAX_EPOCH", "4", "SOLVER.WARMUP_EPOCHS", "1.0"])
    big = {1: MIN_BOXES_PER_CLASS, 2: 500}
    enough = -(-MIN_TRAIN_STEPS // 4)  # iterations per epoch that make MIN_TRAIN_STEPS in 4 epochs
    assert schedule_warning(cfg, enough, big, [1, 2]) == ""
    short = schedule_warning(cfg, enough - 1, big, [1, 2])
    assert f"{enough - 1} iterations per epoch x 4 epochs" in short
    assert f"{4 * (enough - 1)} steps" in short and f"{enough - 1} of them warm-up" in short
    rare = schedule_warning(cfg, enough, {1: MIN_BOXES_PER_CLASS - 1, 2: 500}, [1, 2, 3])
    assert "steps" not in rare
    assert f"2 of 3 classes have fewer than {MIN_BOXES_PER_CLASS}" in rare
    assert f"id 1: {MIN_BOXES_PER_CLASS - 1}, id 3: 0" in rare
    long_warmup = load_config(SLOW, ["SOLVER.MAX_EPOCH", "4", "SOLVER.WARMUP_EPOCHS", "2.5"])
    assert "warm-up" in schedule_warning(long_warmup, 10 * enough, big, [1, 2])


# --- fine-tuning from a checkpoint with another head -------------------------------------------


def _ava_checkpoint(path: Path) -> dict:
    """A PySlowFast-format .pyth of the Slow tiny network with an 80-class head whose bias is the
    action id, as an AVA checkpoint of that network would be; returns its state dict."""
    torch.manual_seed(3)
    state = build_model(load_config(SLOW, ["MODEL.NUM_CLASSES", "80"])).state_dict()
    state["head.projection.bias"] = torch.arange(1.0, 81.0)
    torch.save({"epoch": 19, "model_state": state}, path)
    return state


def test_class_map_from_the_config_copies_rows_and_names_the_key_on_bad_ids(tmp_path):
    path = tmp_path / "ava.pyth"
    state = _ava_checkpoint(path)
    opts = ["TRAIN.CHECKPOINT_FILE_PATH", str(path)]
    cfg = load_config(SLOW, [*opts, "TRAIN.CHECKPOINT_CLASS_MAP", "[[1, 12], [5, 80]]"])
    model = build_model(cfg)
    report = initialize_from_checkpoint(cfg, model)
    assert "1<-12, 5<-80; 3 re-initialized" in report.head
    assert torch.equal(model.head.projection.weight[4], state["head.projection.weight"][79])
    assert model.head.projection.bias.tolist()[0] == 12 and model.head.projection.bias[4] == 80
    bad = load_config(SLOW, [*opts, "TRAIN.CHECKPOINT_CLASS_MAP", "[[1, 99]]"])
    with pytest.raises(CheckpointError, match=r"TRAIN\.CHECKPOINT_CLASS_MAP: .*checkpoint id 99"):
        initialize_from_checkpoint(bad, build_model(bad))


# --- short training runs on the generated set --------------------------------------------------


def _single_label_train_csv(data_root: Path, out: Path) -> Path:
    """The generated train CSV without the flicker rows of boxes that also have a motion class,
    so that every box has exactly one action (what the softmax loss needs)."""
    lines = (data_root / "annotations/ava_train_v2.2.csv").read_text().splitlines()
    kept = [line for line in lines if line.split(",")[6] != "5"]
    out.write_text("\n".join(kept) + "\n")
    return out


def _run(data, tmp_path: Path, *opts: str):
    cfg = load_config(
        SLOW,
        ["DATA.PATH_TO_DATA_DIR", str(data.root), "OUTPUT_DIR", str(tmp_path / "run")]
        + SMALL_RUN
        + list(opts),
    )
    return cfg, train(cfg)


@pytest.mark.parametrize(
    "opts",
    [
        ("MODEL.LOSS_FUNC", "bce"),
        ("MODEL.LOSS_FUNC", "focal"),
        ("MODEL.LOSS_FUNC", "softmax", "MODEL.HEAD_ACT", "softmax", "TEST.ENABLE", "True"),
    ],
    ids=["bce", "focal", "softmax"],
)
def test_one_epoch_trains_with_each_loss_and_warns_once_about_the_small_set(
    synthetic_ava, tmp_path, caplog, opts
):
    extra = list(opts)
    if "softmax" in opts:
        single = _single_label_train_csv(Path(synthetic_ava.root), tmp_path / "train_single.csv")
        extra += ["AVA.TRAIN_GT_BOX_LISTS", f"['{single}']"]
    with caplog.at_level(logging.WARNING, logger="detection.engine.trainer"):
        cfg, result = _run(synthetic_ava, tmp_path, *extra)
    warnings = [
        r.getMessage() for r in caplog.records if "small for this schedule" in r.getMessage()
    ]
    assert len(warnings) == 1
    # 4 annotated train keyframes at batch 2 (tests/conftest.py).
    assert "2 iterations per epoch x 1 epochs" in warnings[0]
    epochs = [r for r in read_log(cfg.OUTPUT_DIR) if r.get("event") == "epoch"]
    assert len(epochs) == 1 and math.isfinite(epochs[0]["loss"]) and epochs[0]["loss"] > 0
    if "softmax" in opts:
        assert result is not None and 0.0 <= result["official"]["mAP"] <= 1.0


def test_softmax_on_multi_label_boxes_fails_before_training_naming_the_keyframe(
    synthetic_ava, tmp_path
):
    with pytest.raises(LabelError, match=r"training keyframe syn_\d+,\d+ box \d+ has 2"):
        _run(synthetic_ava, tmp_path, "MODEL.LOSS_FUNC", "softmax", "MODEL.HEAD_ACT", "softmax")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_label_map_beyond_the_head_fails_at_training_start(synthetic_ava, tmp_path):
    labelmap = tmp_path / "mine.pbtxt"
    entries = [f'item {{\n  name: "{n}"\n  id: {i}\n}}' for i, n in ACTION_NAMES.items()]
    labelmap.write_text("\n".join([*entries, 'item {\n  name: "wave"\n  id: 9\n}']) + "\n")
    with pytest.raises(TrainingSetupError, match=r"mine\.pbtxt has action id 9 .*NUM_CLASSES is 5"):
        _run(synthetic_ava, tmp_path, "AVA.LABEL_MAP_FILE", str(labelmap))


def test_finetuning_run_logs_the_copied_head_rows(synthetic_ava, tmp_path):
    path = tmp_path / "ava.pyth"
    _ava_checkpoint(path)
    cfg, _ = _run(
        synthetic_ava,
        tmp_path,
        "TRAIN.CHECKPOINT_FILE_PATH",
        str(path),
        "TRAIN.CHECKPOINT_CLASS_MAP",
        "[[1, 12], [2, 11]]",
    )
    [record] = [r for r in read_log(cfg.OUTPUT_DIR) if r.get("event") == "finetune"]
    assert record["head"] == (
        "head.projection: checkpoint 80 classes, model 5: rows copied (new id <- checkpoint id) "
        "1<-12, 2<-11; 3 re-initialized"
    )


def test_a_set_smaller_than_one_batch_is_an_error_naming_the_batch_size(synthetic_ava, tmp_path):
    with pytest.raises(TrainingSetupError, match=r"\(4 keyframes\) .*TRAIN\.BATCH_SIZE 8 per"):
        _run(synthetic_ava, tmp_path, "TRAIN.BATCH_SIZE", "8")
