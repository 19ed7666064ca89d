"""Schedule, optimizer groups, atomic checkpoints and the loss of `detection.engine`."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detection.config import get_cfg
from detection.engine.checkpoint_io import (
    atomic_torch_save,
    checkpoint_path,
    last_checkpoint,
    list_checkpoints,
    save_checkpoint,
)
from detection.engine.metrics_log import read_log
from detection.engine.optim import LRSchedule, build_optimizer, parameter_groups
from detection.engine.trainer import freeze_batchnorm, global_bce_loss, seed_everything

ROOT = Path(__file__).resolve().parents[1]


def test_steps_with_warmup_follow_pyslowfast_ava_recipe():
    # PySlowFast's AVA recipe: steps [0, 10, 15, 20] x [1, 0.1, 0.01, 0.001], 5 warm-up epochs.
    s = LRSchedule(
        base_lr=0.1,
        policy="steps_with_relative_lrs",
        max_epoch=20,
        warmup_epochs=5.0,
        warmup_start_lr=0.000125,
        steps=(0, 10, 15, 20),
        lrs=(1, 0.1, 0.01, 0.001),
    )
    assert s(0.0) == pytest.approx(0.000125)
    # Linear between the start rate and the policy's rate at the end of warm-up.
    assert s(2.5) == pytest.approx(0.000125 + (0.1 - 0.000125) / 2)
    assert s(5.0) == pytest.approx(0.1)
    assert s(9.99) == pytest.approx(0.1)
    assert s(10.0) == pytest.approx(0.01)
    assert s(15.5) == pytest.approx(0.001)
    assert s(19.9) == pytest.approx(0.001)


def test_cosine_reaches_end_lr_and_warmup_joins_it():
    s = LRSchedule(base_lr=1.0, policy="cosine", max_epoch=10, cosine_end_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1)
    warm = LRSchedule(
        base_lr=1.0, policy="cosine", max_epoch=10, warmup_epochs=2, warmup_start_lr=0.0
    )
    end_of_warmup = 0.5 * (1 + math.cos(math.pi * 2 / 10))
    assert warm(1.0) == pytest.approx(end_of_warmup / 2)
    assert warm(2.0) == pytest.approx(end_of_warmup)
    after = LRSchedule(
        base_lr=1.0, max_epoch=10, warmup_epochs=2, warmup_start_lr=0.0, cosine_after_warmup=True
    )
    assert after(2.0) == pytest.approx(1.0)
    assert after(6.0) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"policy": "linear"}, "LR_POLICY"),
        ({"policy": "steps_with_relative_lrs", "steps": (0, 5), "lrs": (1,)}, "equal length"),
        ({"policy": "steps_with_relative_lrs", "steps": (1, 5), "lrs": (1, 0.1)}, "start at 0"),
        ({"cosine_end_lr": 2.0}, "COSINE_END_LR"),
    ],
)
def test_bad_schedules_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRSchedule(base_lr=1.0, max_epoch=10, **kwargs)


def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Flatten(), nn.Linear(4, 2))


def test_bn_parameters_get_their_own_weight_decay_and_frozen_ones_are_left_out():
    net = _tiny_net()
    groups = parameter_groups(net, weight_decay=1e-4, norm_weight_decay=0.0)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in groups}
    assert by_decay[0.0] == {id(net[1].weight), id(net[1].bias)}
    assert by_decay[1e-4] == {id(p) for i in (0, 3) for p in net[i].parameters()}
    freeze_batchnorm(net)
    groups = parameter_groups(net, weight_decay=1e-4, norm_weight_decay=0.0)
    assert [g["weight_decay"] for g in groups] == [1e-4]
    net.train()
    net[1].eval()  # what set_train_mode does for frozen BN
    before = net[1].running_mean.clone()
    net(torch.randn(2, 3, 1, 1, 1) + 5)
    assert torch.equal(net[1].running_mean, before)


def test_optimizer_from_config_starts_at_the_warmup_rate():
    cfg = get_cfg()
    cfg.SOLVER.WARMUP_EPOCHS = 1.0
    cfg.SOLVER.WARMUP_START_LR = 0.003
    cfg.SOLVER.NESTEROV = True
    opt = build_optimizer(_tiny_net(), cfg)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["lr"] == pytest.approx(0.003) for g in opt.param_groups)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["nesterov"]
    cfg.SOLVER.OPTIMIZING_METHOD = "adam"
    with pytest.raises(ValueError, match="OPTIMIZING_METHOD"):
        build_optimizer(_tiny_net(), cfg)


def test_checkpoint_is_pyslowfast_layout_and_loads_with_weights_only(tmp_path):
    cfg = get_cfg()
    net = _tiny_net()
    opt = build_optimizer(net, cfg)
    net(torch.randn(2, 3, 1, 1, 1)).sum().backward()
    opt.step()  # creates momentum buffers, which resume must restore
    path = save_checkpoint(tmp_path, net, opt, epoch=2, cfg=cfg)
    assert path == tmp_path / "checkpoints" / "checkpoint_epoch_00003.pyth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == {"epoch", "model_state", "optimizer_state", "cfg"}
    assert state["epoch"] == 2
    assert torch.equal(state["model_state"]["0.weight"], net[0].weight)
    assert state["optimizer_state"]["state"], "momentum buffers missing"
    assert "BASE_LR" in state["cfg"]


class _FailsHalfWay:
    """Serializes to an error, as a crash in the middle of torch.save would leave things."""

    def __reduce__(self):
        raise OSError("disk full")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "ckpt.pyth"
    atomic_torch_save({"x": torch.ones(2)}, path)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({"x": torch.zeros(100_000), "bad": _FailsHalfWay()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pyth"], "temporary file left behind"


def test_last_checkpoint_orders_by_epoch_and_ignores_partial_files(tmp_path):
    assert last_checkpoint(tmp_path) is None
    for epoch in (0, 9, 1):
        atomic_torch_save({"epoch": epoch}, checkpoint_path(tmp_path, epoch))
    (tmp_path / "checkpoints" / ".checkpoint_epoch_00011.pyth.abc.tmp").write_bytes(b"partial")
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == [f"checkpoint_epoch_{n:05d}.pyth" for n in (1, 2, 10)]
    assert last_checkpoint(tmp_path).name == "checkpoint_epoch_00010.pyth"


def test_global_bce_is_the_mean_bce_in_one_process():
    logits = torch.randn(5, 3)
    labels = (torch.rand(5, 3) > 0.5).float()
    expected = F.binary_cross_entropy_with_logits(logits, labels)
    assert global_bce_loss(logits, labels) == pytest.approx(expected.item(), rel=1e-6)


def test_seed_everything_depends_on_every_stream():
    seed_everything(0, 1)
    a = torch.rand(3)
    seed_everything(0, 1)
    assert torch.equal(a, torch.rand(3))
    seed_everything(0, 2)
    assert not torch.equal(a, torch.rand(3))


def _train_command(data_dir: Path, out: Path) -> list[str]:
    return [
        sys.executable, str(ROOT / "tools/train_net.py"),
        "--config", str(ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"),
        "DATA.PATH_TO_DATA_DIR", str(data_dir),
        "OUTPUT_DIR", str(out),
        "DEVICE", "cpu",
        "SOLVER.MAX_EPOCH", "3",
        "TRAIN.BATCH_SIZE", "1",
        "TEST.ENABLE", "False",
        "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
        "DATA.TRAIN_CROP_SIZE", "64",
        "DATA_LOADER.NUM_WORKERS", "1",
        "LOG_PERIOD", "1",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_auto_resume_equals_an_uninterrupted_run(synthetic_ava, tmp_path):
    data = Path(synthetic_ava.root)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    subprocess.run(_train_command(data, reference), env=_env(), check=True, capture_output=True)

    # Kill the whole process group (trainer and its loader worker) once epoch 2 has started.
    proc = subprocess.Popen(
        _train_command(data, resumed),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not any(r["event"] == "train" and r["epoch"] == 1 for r in read_log(resumed)):
            assert proc.poll() is None, "training ended before it could be interrupted"
            assert time.monotonic() < deadline, "epoch 2 never started"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    names = [p.name for p in list_checkpoints(resumed)]
    assert names == ["checkpoint_epoch_00001.pyth"], f"not killed mid-epoch 2: {names}"

    subprocess.run(_train_command(data, resumed), env=_env(), check=True, capture_output=True)
    resumes = [r for r in read_log(resumed) if r["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["start_epoch"] == 1, "epoch 1 was lost or redone"
    assert resumes[0]["dropped"] >= 1  # the killed run's records of epoch 1
    trained = [r["epoch"] for r in read_log(resumed) if r["event"] == "epoch"]
    assert trained == [0, 1, 2]
    steps = [(r["epoch"], r["iter"]) for r in read_log(resumed) if r["event"] == "train"]
    reference_steps = [
        (r["epoch"], r["iter"]) for r in read_log(reference) if r["event"] == "train"
    ]
    assert steps == reference_steps, "the replayed epoch's records appear twice"

    a = torch.load(last_checkpoint(reference), weights_only=True)
    b = torch.load(last_checkpoint(resumed), weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for name, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][name]), f"{name} differs after resume"
    for key, state in a["optimizer_state"]["state"].items():
        assert torch.equal(
            state["momentum_buffer"], b["optimizer_state"]["state"][key]["momentum_buffer"]
        )


def test_ava_configs_default_to_pyslowfast_ava_recipe():
    """5 warm-up epochs from 0.000125 up to 0.1, then x0.1 at epochs 10 and 15, 20 epochs."""
    from detection.config import load_config
    from detection.engine.optim import LRSchedule

    schedule = LRSchedule.from_config(
        load_config(str(ROOT / "configs/AVA/SLOWFAST_32x2_R101_50_50.yaml"))
    )
    assert schedule(0.0) == pytest.approx(0.000125)
    assert schedule(2.5) == pytest.approx((0.1 + 0.000125) / 2)
    assert [schedule(e) for e in (5.0, 9.9, 10.0, 14.9, 15.0, 19.9)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


@pytest.mark.parametrize("tool", ["train_net.py", "test_net.py"])
def test_tools_report_a_bad_config_key_in_one_line(tool):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / tool),
            "--config",
            str(ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"),
            "MODEL.NUM_CLASS",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "MODEL.NUM_CLASS" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluation_writes_and_logs_both_protocols(synthetic_ava, tmp_path):
    """metrics.json, the "eval" record and the TensorBoard scalars hold the official and the
    PySlowFast frame-mAP, each what `evaluate` gives on the written detections.csv."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from detection.config import load_config
    from detection.data.dataset import build_loader
    from detection.engine.metrics_log import MetricsLogger
    from detection.engine.tester import (
        DETECTIONS_FILE,
        METRICS_FILE,
        annotation_file,
        evaluate_model,
    )
    from detection.evaluation.frame_map import evaluate
    from detection.models import build_model

    cfg = load_config(
        str(ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"),
        ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root), "OUTPUT_DIR", str(tmp_path)]
        + ["DEVICE", "cpu", "DATA.TEST_CROP_SIZE", "64", "DATA_LOADER.NUM_WORKERS", "0"],
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    loader = build_loader(cfg, "test", distributed=False, shuffle=False)
    log = MetricsLogger(tmp_path)
    try:
        summary = evaluate_model(cfg, model, loader, torch.device("cpu"), log=log, epoch=0)
    finally:
        log.close()

    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics == summary
    assert list(metrics) == ["official", "pyslowfast"]
    for protocol, saved in metrics.items():
        result = evaluate(
            annotation_file(cfg, cfg.AVA.LABEL_MAP_FILE),
            annotation_file(cfg, cfg.AVA.GROUNDTRUTH_FILE),
            tmp_path / DETECTIONS_FILE,
            annotation_file(cfg, cfg.AVA.EXCLUSION_FILE),
            protocol=protocol,
        )
        assert result.per_class and saved == {"mAP": result.mAP, "per_class": result.per_class}
    (record,) = [r for r in read_log(tmp_path) if r["event"] == "eval"]
    assert record["epoch"] == 0
    assert {k: record[k] for k in metrics} == metrics
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    for protocol in metrics:
        (scalar,) = events.Scalars(f"eval/mAP_{protocol}")
        assert scalar.step == 1
        assert scalar.value == pytest.approx(metrics[protocol]["mAP"], rel=1e-6)


def test_evaluation_checks_its_inputs_first_and_replaces_the_result_set_as_a_whole(
    synthetic_ava, tmp_path
):
    """A label map that does not fit the model stops the run before inference and leaves the
    previous detections.csv + metrics.json pair alone; a good run replaces both and removes the
    temporaries a killed run left."""
    from detection.ava.packaged import ALL_CLASSES, packaged_labelmap_path
    from detection.config import load_config
    from detection.data.dataset import build_loader
    from detection.engine.tester import (
        DETECTIONS_FILE,
        METRICS_FILE,
        EvaluationInputError,
        evaluate_model,
    )
    from detection.errors import UserError
    from detection.models import build_model

    def config(*overrides):
        return load_config(
            str(ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"),
            ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root), "OUTPUT_DIR", str(tmp_path)]
            + ["DEVICE", "cpu", "DATA.TEST_CROP_SIZE", "64", "DATA_LOADER.NUM_WORKERS", "0"]
            + list(overrides),
        )

    old = {DETECTIONS_FILE: "old,0902,0.1,0.1,0.2,0.2,1,0.5\n", METRICS_FILE: '{"old": 1}\n'}
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    stale = [
        tmp_path / f".{DETECTIONS_FILE}.k1ll3d.tmp",
        tmp_path / f"..{METRICS_FILE}.a.tmp.b.tmp",
    ]
    for path in stale:
        path.write_text("half")
    cfg = config("AVA.LABEL_MAP_FILE", str(packaged_labelmap_path(ALL_CLASSES)))
    torch.manual_seed(0)
    model = build_model(cfg)
    loader = build_loader(cfg, "test", distributed=False, shuffle=False)
    with pytest.raises(EvaluationInputError) as error:
        evaluate_model(cfg, model, loader, torch.device("cpu"))
    message = str(error.value)
    assert isinstance(error.value, UserError) and "\n" not in message
    assert ALL_CLASSES in message and "MODEL.NUM_CLASSES = 5" in message
    assert {name: (tmp_path / name).read_text() for name in old} == old

    summary = evaluate_model(config(), model, loader, torch.device("cpu"))
    assert json.loads((tmp_path / METRICS_FILE).read_text()) == summary
    assert (tmp_path / DETECTIONS_FILE).read_text() != old[DETECTIONS_FILE]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_replace_together_removes_every_old_file_before_renaming(tmp_path):
    from detection.engine.tester import replace_together

    for name in ("a.csv", "b.json", ".a.new", ".b.new"):
        (tmp_path / name).write_text(f"content of {name}")
    # The second temporary is missing: the first new file is in place, and no old file is left
    # beside it to be taken for its partner.
    with pytest.raises(FileNotFoundError):
        replace_together(
            [(tmp_path / ".a.new", tmp_path / "a.csv"), (tmp_path / ".gone", tmp_path / "b.json")]
        )
    assert (tmp_path / "a.csv").read_text() == "content of .a.new"
    assert not (tmp_path / "b.json").exists()
    replace_together([(tmp_path / ".b.new", tmp_path / "b.json")])
    assert (tmp_path / "b.json").read_text() == "content of .b.new"


def test_detections_hold_only_the_label_maps_classes(synthetic_ava, tmp_path):
    """detections.csv has a row per box for each label-map class, in ascending id order, as
    PySlowFast writes it; those rows are the ones a run with the full label map writes."""
    import pandas as pd

    from detection.ava.dataset_files import write_labelmap
    from detection.ava.labelmap import read_labelmap
    from detection.config import load_config
    from detection.data.dataset import build_loader
    from detection.engine.tester import DETECTIONS_FILE, annotation_file, evaluate_model
    from detection.models import build_model

    def run(out: Path, labelmap: Path | None):
        opts = ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root), "OUTPUT_DIR", str(out)]
        opts += ["DEVICE", "cpu", "DATA.TEST_CROP_SIZE", "64", "DATA_LOADER.NUM_WORKERS", "0"]
        if labelmap is not None:
            opts += ["AVA.LABEL_MAP_FILE", str(labelmap)]
        cfg = load_config(str(ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"), opts)
        torch.manual_seed(0)
        model = build_model(cfg)
        loader = build_loader(cfg, "test", distributed=False, shuffle=False)
        evaluate_model(cfg, model, loader, torch.device("cpu"))
        columns = ["video_id", "timestamp", "x1", "y1", "x2", "y2", "action_id", "score"]
        return cfg, pd.read_csv(out / DETECTIONS_FILE, header=None, names=columns, dtype=str)

    cfg, full = run(tmp_path / "full", None)
    labelmap = read_labelmap(annotation_file(cfg, cfg.AVA.LABEL_MAP_FILE))
    kept = sorted(labelmap.ids)[::2]
    assert 0 < len(kept) < len(labelmap.ids)
    subset_file = tmp_path / "subset.pbtxt"
    write_labelmap(subset_file, {i: labelmap.names[i] for i in kept[::-1]})
    _, subset = run(tmp_path / "subset", subset_file)

    assert sorted(set(full["action_id"].astype(int))) == sorted(labelmap.ids)
    expected = full[full["action_id"].astype(int).isin(kept)].reset_index(drop=True)
    pd.testing.assert_frame_equal(subset, expected)


def test_input_stager_reuses_its_cpu_inputs_for_test_batches_of_one_shape():
    """Test batches (uint8 frames) are normalized into the stager's tensors, the same ones
    while the clip shape stays (a smaller batch in their first rows), holding each batch's
    inputs; training batches' inputs pass as they are."""
    from detection.data.transforms import InputFormat
    from detection.engine.precision import InputStager

    fmt = InputFormat((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), False, "slowfast", 4)
    generator = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 8, 6, 10, 3), dtype=torch.uint8, generator=generator)
    boxes = torch.tensor([[0.0, 1, 1, 5, 5], [1.0, 2, 2, 8, 5]])
    stage = InputStager(torch.device("cpu"))
    first, staged_boxes = stage({"frames": frames, "input_format": fmt, "boxes": boxes})
    torch.testing.assert_close(staged_boxes, boxes, rtol=0, atol=0)
    for ours, theirs in zip(first, fmt.inputs(frames), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    pointers = [x.data_ptr() for x in first]
    other = frames.flip(0).contiguous()
    second, _ = stage({"frames": other, "input_format": fmt, "boxes": boxes})
    assert [x.data_ptr() for x in second] == pointers
    for ours, theirs in zip(second, fmt.inputs(other), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    smaller, _ = stage({"frames": frames[:1], "input_format": fmt, "boxes": boxes[:1]})
    assert [x.shape[0] for x in smaller] == [1, 1]
    assert [x.data_ptr() for x in smaller] == pointers  # the first rows of the same tensors
    torch.testing.assert_close(smaller[1], fmt.inputs(frames[:1])[1], rtol=0, atol=0)
    other_size = frames[:, :, :4].contiguous()
    resized, _ = stage({"frames": other_size, "input_format": fmt, "boxes": boxes})
    assert resized[1].shape == (2, 3, 8, 4, 10)
    torch.testing.assert_close(resized[1], fmt.inputs(other_size)[1], rtol=0, atol=0)
    training = [torch.rand(2, 3, 2, 6, 10), torch.rand(2, 3, 8, 6, 10)]
    moved, _ = stage({"inputs": training, "boxes": boxes})
    assert all(a is b for a, b in zip(moved, training, strict=True))
