"""Two gloo processes under torchrun against one process, through the real command-line tools.

What is compared, and why it is well-defined:
- Training: the global batch is every training clip (one step per epoch), split 2 x B/2 under
  torchrun and 1 x B alone, so both runs average the gradient of the same boxes whatever the
  sampler's order (the engine normalizes the loss by the global box count), and each clip gets
  the same crop and flip in both runs (augmentation is seeded per (RNG_SEED, epoch, clip)).
  Dropout is 0 and BN is frozen, because dropout masks and batch statistics depend on how the
  batch is split. After 2 epochs (2 SGD steps with momentum) every weight must match to float32
  tolerance, and enough of them must have moved for that to mean something.
- Testing: 3 processes with TEST.BATCH_SIZE 1 on 2 val keyframes, so the third process gets
  the last keyframe again; after gathering, every (keyframe, box, action) must appear
  exactly once, with the single process's scores and mAP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/synthetic/SLOWFAST_TINY.yaml"


def _run(args: list[str], timeout: float = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (
        f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc.stdout


def _torchrun(script: str, nproc: int) -> list[str]:
    return ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script]


def _num_train_clips(data_dir: Path) -> int:
    gt = pd.read_csv(data_dir / "annotations/ava_train_v2.2.csv", header=None)
    return len(gt.groupby([0, 1]))


def _train_opts(data_dir: Path, out: Path, batch: int) -> list[str]:
    return [
        "--config", str(CONFIG),
        "DATA.PATH_TO_DATA_DIR", str(data_dir),
        "OUTPUT_DIR", str(out),
        "DEVICE", "cpu",
        "TRAIN.BATCH_SIZE", str(batch),
        "TEST.BATCH_SIZE", "1",
        "SOLVER.MAX_EPOCH", "2",
        "SOLVER.WARMUP_EPOCHS", "0.0",
        "SOLVER.BASE_LR", "0.05",
        "BN.FREEZE", "True",
        "MODEL.DROPOUT_RATE", "0.0",
        "DATA.TRAIN_JITTER_SCALES", "[64, 80]",
        "DATA.TRAIN_CROP_SIZE", "64",
        "DATA.TEST_CROP_SIZE", "64",
        "DATA_LOADER.NUM_WORKERS", "0",
        "LOG_PERIOD", "1",
    ]  # fmt: skip


def _detections(out: Path) -> pd.DataFrame:
    df = pd.read_csv(
        out / "detections.csv",
        header=None,
        names=["video", "sec", "x1", "y1", "x2", "y2", "action", "score"],
    )
    return df.sort_values(["video", "sec", "x1", "y1", "x2", "y2", "action"]).reset_index(drop=True)


def test_two_gloo_processes_train_and_test_like_one(synthetic_ava, tmp_path):
    data = Path(synthetic_ava.root)
    n = _num_train_clips(data)
    assert n % 2 == 0, "the comparison needs a global batch that splits evenly over 2 ranks"
    single, double = tmp_path / "single", tmp_path / "ddp"
    _run(["tools/train_net.py", *_train_opts(data, single, n)])
    _run([*_torchrun("tools/train_net.py", 2), *_train_opts(data, double, n // 2)])

    a = torch.load(single / "checkpoints/checkpoint_epoch_00002.pyth", weights_only=True)
    b = torch.load(double / "checkpoints/checkpoint_epoch_00002.pyth", weights_only=True)
    first = torch.load(single / "checkpoints/checkpoint_epoch_00001.pyth", weights_only=True)
    assert a["model_state"].keys() == b["model_state"].keys()
    moved = 0
    for name, value in a["model_state"].items():
        torch.testing.assert_close(b["model_state"][name], value, rtol=1e-4, atol=1e-6, msg=name)
        moved += int(not torch.equal(value, first["model_state"][name]))
    assert moved > 10, "training changed almost no weights: the comparison would prove nothing"
    assert _map(double) == pytest.approx(_map(single), abs=1e-4)

    # Testing the same weights with 3 processes: each keyframe box once, same scores and mAP.
    weights = str(single / "checkpoints/checkpoint_epoch_00002.pyth")
    tested = tmp_path / "test3"
    test_opts = _train_opts(data, tested, 1) + ["TEST.CHECKPOINT_FILE_PATH", weights]
    _run([*_torchrun("tools/test_net.py", 3), *test_opts])
    d1, d3 = _detections(single), _detections(tested)
    key = ["video", "sec", "x1", "y1", "x2", "y2", "action"]
    assert not d3.duplicated(key).any()
    pd.testing.assert_frame_equal(d1[key], d3[key])
    assert (d1["score"] - d3["score"]).abs().max() < 1e-4
    assert _map(tested) == pytest.approx(_map(single), abs=1e-6)


def _map(out: Path) -> float:
    return json.loads((out / "metrics.json").read_text())["official"]["mAP"]
