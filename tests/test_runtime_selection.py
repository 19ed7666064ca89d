"""MODEL.RUNTIME: test_net and the predictor score with the exported model on ONNX Runtime and
OpenVINO as with PyTorch, through one export cache that is reused while the config's graph and
the weights are unchanged and rebuilt when the weights change; the int8 runtimes run and stay
near the fp32 scores; a wrong value is a one-line error.

The model is the generated set's Slow-only config at 64 px (an export takes ~15 s of CPU), with
weights whose scores spread over (0, 1) (export_helpers.save_weights). test_net and the
predictor share one cache: the generated videos (160x120) and the bundled walking clip (768x576)
are both 4:3, so both become 85x64 clips and use the same exported file.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from export_helpers import needs_export, save_weights

from detection.config import load_config
from detection.data.video import VideoReader
from detection.engine.predictor import ActionPredictor, PredictorError
from detection.engine.tester import DETECTIONS_FILE, evaluate_checkpoint
from detection.export import ClipShape, RuntimeConfigError, export_cache_path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/synthetic/SLOW_TINY.yaml"
TOL = 1e-4
# int8: convolutions quantized, head fp32. On these random weights (logits of std 2, where a
# score is most sensitive to its logit) and the generated clips the mean score change measured
# 0.028 (OpenVINO) and 0.034 (ONNX Runtime), the largest 0.70 (tiny widths: 8 channels per
# group quantize coarsely); a broken quantization (wrong scales, swapped channels) moves scores
# by ~0.3 on average.
INT8_MEAN_TOL = 0.12


def _config(synthetic_ava, *opts: str):
    return load_config(
        str(CONFIG),
        ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root), "DATA.TEST_CROP_SIZE", "64"]
        + ["DATA_LOADER.NUM_WORKERS", "0", "DEVICE", "cpu", *opts],
    )


def _labelmap(synthetic_ava) -> str:
    return str(synthetic_ava.root / "annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt")


@pytest.fixture(scope="module")
def setup(synthetic_ava, tmp_path_factory):
    """(folder, weights file, export cache folder) for this module."""
    folder = tmp_path_factory.mktemp("runtimes")
    weights = save_weights(_config(synthetic_ava), folder / "weights.pyth")
    return folder, weights, folder / "cache"


def _test_net(synthetic_ava, setup, runtime: str, name: str) -> pd.DataFrame:
    """Run the test loop with MODEL.RUNTIME `runtime` into its own OUTPUT_DIR; its detections."""
    folder, weights, cache = setup
    out = folder / name
    cfg = _config(
        synthetic_ava,
        *["OUTPUT_DIR", str(out), "TEST.CHECKPOINT_FILE_PATH", str(weights)],
        *["MODEL.RUNTIME", runtime, "MODEL.EXPORT_DIR", str(cache)],
    )
    evaluate_checkpoint(cfg)
    return pd.read_csv(out / DETECTIONS_FILE, header=None)


def _max_score_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    # Same rows in the same order (sorted by video, second, box), class by class.
    assert len(a) == len(b) > 0
    assert a.iloc[:, :7].equals(b.iloc[:, :7])
    return float(np.abs(a[7].to_numpy() - b[7].to_numpy()).max())


def _stats(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}


@needs_export
def test_test_net_scores_like_torch_on_each_runtime_and_reuses_the_cache(synthetic_ava, setup):
    cache = setup[2]
    torch_rows = _test_net(synthetic_ava, setup, "torch", "torch")
    assert not cache.exists(), "the torch runtime exports nothing"
    for runtime in ("onnxruntime", "openvino"):
        rows = _test_net(synthetic_ava, setup, runtime, runtime)
        assert _max_score_difference(rows, torch_rows) <= TOL, runtime
    # ONNX Runtime's file, and the 3D-conv export converted once for OpenVINO: switching
    # runtimes re-exports nothing.
    files = _stats(cache)
    assert sorted(n.split(".", 2)[2] for n in files) == ["bin", "conv3d.onnx", "onnx", "xml"]
    again = _test_net(synthetic_ava, setup, "onnxruntime", "again")
    assert _stats(cache) == files, "a second run reuses the cached files untouched"
    assert again.equals(_test_net(synthetic_ava, setup, "onnxruntime", "onnxruntime"))


@needs_export
def test_the_predictor_scores_like_torch_from_the_same_cache(synthetic_ava, setup):
    _, weights, cache = setup
    common = ["MODEL.WEIGHTS", str(weights), "DEMO.DETECTOR", "hog"]
    common += ["DEMO.LABEL_FILE_PATH", _labelmap(synthetic_ava), "MODEL.EXPORT_DIR", str(cache)]
    reference = ActionPredictor.from_config(_config(synthetic_ava, *common))
    with VideoReader(ROOT / "data/demo/vtest_walking_6s.mp4") as reader:
        fmt = reference.clip_format
        clips = [reader.read_at_times(fmt.clip_times(t, reader.duration)) for t in (1.0, 3.0)]
    boxes = [
        np.float32([[100, 50, 300, 500], [400, 100, 600, 560]]),
        np.float32([[0, 0, 767, 575]]),
    ]
    expected = reference.predict_batch(clips, boxes)
    cache.mkdir(exist_ok=True)
    before = _stats(cache)
    for runtime in ("onnxruntime", "openvino"):
        cfg = _config(synthetic_ava, *common, "MODEL.RUNTIME", runtime)
        predictor = ActionPredictor.from_config(cfg)
        assert predictor.device == torch.device("cpu") and not predictor.untrained
        got = predictor.predict_batch(clips, boxes)
        for g, e in zip(got, expected, strict=True):
            assert g.action_scores.shape == e.action_scores.shape == (len(e), 5)
            np.testing.assert_allclose(g.action_scores, e.action_scores, rtol=0, atol=TOL)
    if before:  # test_net's files of this 85x64 clip size, when that test ran first
        assert _stats(cache) == before
    # An exported file given explicitly runs as is, without weights.
    cfg = _config(synthetic_ava, *common[2:], "MODEL.RUNTIME", "openvino")
    onnx_file = export_cache_path(
        cfg, weights, cache_dir=cache, clip=ClipShape.from_config(cfg, 64, 85)
    )
    cfg.defrost()
    cfg.MODEL.EXPORT_FILE = str(onnx_file)
    explicit = ActionPredictor.from_config(cfg)
    assert not explicit.untrained and explicit.weights == str(onnx_file)
    for g, e in zip(explicit.predict_batch(clips, boxes), expected, strict=True):
        np.testing.assert_allclose(g.action_scores, e.action_scores, rtol=0, atol=TOL)


@needs_export
def test_changed_weights_get_a_new_export(synthetic_ava, setup, tmp_path):
    _, weights, cache = setup
    changed = tmp_path / "weights.pyth"
    state = torch.load(weights, weights_only=True)
    state["model_state"]["head.projection.bias"] += 0.5
    torch.save(state, changed)
    moved = (tmp_path, changed, cache)
    before = set(cache.iterdir()) if cache.exists() else set()
    rows = _test_net(synthetic_ava, moved, "onnxruntime", "changed_onnx")
    new = set(cache.iterdir()) - before
    assert [p.suffix for p in new] == [".onnx"]
    assert new.pop().name.startswith("weights.")
    torch_rows = _test_net(synthetic_ava, moved, "torch", "changed_torch")
    assert _max_score_difference(rows, torch_rows) <= TOL


@needs_export
def test_int8_runtimes_run_and_stay_near_the_fp32_scores(synthetic_ava, setup):
    """The int8 file is calibrated on the generated set's training clips, cached once and run
    by both engines."""
    cache = setup[2]
    torch_rows = _test_net(synthetic_ava, setup, "torch", "torch_for_int8")
    for runtime in ("openvino_int8", "onnxruntime_int8"):
        rows = _test_net(synthetic_ava, setup, runtime, runtime)
        difference = np.abs(rows[7].to_numpy() - torch_rows[7].to_numpy())
        print(f"{runtime}: score change mean {difference.mean():.4f}, max {difference.max():.4f}")
        assert rows.iloc[:, :7].equals(torch_rows.iloc[:, :7])
        assert 0 < difference.mean() <= INT8_MEAN_TOL, runtime
    assert len(list(cache.glob("*.int8.onnx"))) == 1


def test_an_unknown_runtime_is_a_one_line_error(synthetic_ava, setup, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools/test_net.py"), "--config", str(CONFIG)]
        + ["DATA.PATH_TO_DATA_DIR", str(synthetic_ava.root), "OUTPUT_DIR", str(tmp_path)]
        + ["MODEL.WEIGHTS", str(setup[1]), "MODEL.RUNTIME", "tensorrt", "DEVICE", "cpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "MODEL.RUNTIME" in lines[0] and "tensorrt" in lines[0] and "openvino" in lines[0]


def test_exported_runtimes_need_weights_and_the_cpu(synthetic_ava):
    labelmap = ["DEMO.LABEL_FILE_PATH", _labelmap(synthetic_ava), "DEMO.DETECTOR", "hog"]
    with pytest.raises(RuntimeConfigError, match="MODEL.RUNTIME openvino .*set MODEL.WEIGHTS"):
        ActionPredictor.from_config(_config(synthetic_ava, *labelmap, "MODEL.RUNTIME", "openvino"))
    cfg = _config(synthetic_ava, "MODEL.RUNTIME", "onnxruntime")
    cfg.defrost()
    cfg.DEVICE = "cuda"
    with pytest.raises(PredictorError, match="runs on the CPU, but DEVICE is 'cuda'"):
        from detection.engine.predictor import runtime_device

        runtime_device(cfg)
