import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from model_helpers import randomize_batchnorm

from detection.checkpoint import (
    CheckpointError,
    caffe2_to_pyslowfast_name,
    load_checkpoint,
    read_checkpoint,
)
from detection.config import load_config
from detection.models import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = str(CONFIGS / "test/SLOWFAST_TINY.yaml")


def _model(seed: int, config: str = TINY, *opts: str):
    """A tiny model with random weights and random BN statistics (so BN is not an identity)."""
    torch.manual_seed(seed)
    return randomize_batchnorm(build_model(load_config(config, list(opts))))


def _inputs(t_fast: int = 8):
    g = torch.Generator().manual_seed(7)
    fast = torch.randn(2, 3, t_fast, 64, 64, generator=g)
    boxes = torch.tensor([[0, 4.0, 6.0, 40.0, 60.0], [1, 20.0, 10.0, 63.0, 50.0]])
    return [fast[:, :, ::4].contiguous(), fast], boxes


def _outputs(model) -> torch.Tensor:
    inputs, boxes = _inputs()
    with torch.no_grad():
        return model(inputs, boxes)


def _assert_loaded_identically(source, path):
    target = _model(seed=1)
    assert not torch.equal(_outputs(source), _outputs(target))
    report = load_checkpoint(path, target)
    assert report.ok and len(report.loaded) > 0
    assert torch.equal(_outputs(source), _outputs(target))
    return report


def test_pyslowfast_pyth_round_trip_and_whole_dict(tmp_path):
    source = _model(seed=0)
    path = tmp_path / "checkpoint_epoch_00001.pyth"
    cfg = load_config(TINY)
    torch.save(
        {
            "epoch": 1,
            "model_state": source.state_dict(),
            "optimizer_state": torch.optim.SGD(source.parameters(), lr=0.1).state_dict(),
            "cfg": cfg.dump(),
        },
        path,
    )
    report = _assert_loaded_identically(source, path)
    assert report.format == "pyslowfast"
    content = read_checkpoint(path)
    assert content["epoch"] == 1 and "param_groups" in content["optimizer_state"]
    assert "SLOWFAST" in content["cfg"]


def test_dataparallel_prefix_is_removed(tmp_path):
    source = _model(seed=0)
    path = tmp_path / "dp.pyth"
    torch.save({"model_state": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    _assert_loaded_identically(source, path)


def test_legacy_torch_pickle_pkl(tmp_path):
    # The R101 AVA zoo files are torch.save pickles in the pre-zip format despite the .pkl name.
    source = _model(seed=0)
    path = tmp_path / "SLOWFAST_32x2_R101_50_50.pkl"
    torch.save({"model_state": source.state_dict()}, path, _use_new_zipfile_serialization=False)
    report = _assert_loaded_identically(source, path)
    assert report.format == "pyslowfast"


def _caffe2_name(name: str, fast_blocks: dict[int, int]) -> str | None:
    """Our name -> Caffe2 blob name, written independently of the library's mapping."""
    *module, param = name.split(".")
    if param == "num_batches_tracked":
        return None
    bn_suffix = {"weight": "bn_s", "bias": "bn_b", "running_mean": "bn_rm", "running_var": "bn_riv"}
    plain_suffix = {"weight": "w", "bias": "b"}
    if module == ["head", "projection"]:
        return f"pred_{plain_suffix[param]}"
    if module[0].endswith("_fuse"):
        stage = int(module[0][1])
        layer = (
            "t_pool1_subsample"
            if stage == 1
            else f"t_res{stage}_{fast_blocks[stage] - 1}_branch2c_bn_subsample"
        )
        return f"{layer}_{bn_suffix[param] if module[1] == 'bn' else plain_suffix[param]}"
    stage = int(module[0][1])
    pathway, unit = re.match(r"pathway(\d)_(\w+)", module[1]).groups()
    prefix = "t_" if pathway == "1" else ""
    if unit == "stem":
        if module[2] == "conv":
            return f"{prefix}conv1_{plain_suffix[param]}"
        return f"{prefix}res_conv1_{bn_suffix[param]}"
    if unit.startswith("nonlocal"):
        block = unit[len("nonlocal") :]
        if module[2] == "bn":
            return f"nonlocal_conv{stage}_{block}_{bn_suffix[param]}"
        return f"nonlocal_conv{stage}_{block}_{module[2][len('conv_') :]}_{plain_suffix[param]}"
    block = unit[len("res") :]
    layer = module[2] if module[2].startswith("branch1") else f"branch2{module[3][0]}"
    is_bn = layer.endswith("_bn") or (len(module) > 3 and module[3].endswith("_bn"))
    layer = layer.removesuffix("_bn")
    suffix = bn_suffix[param] if is_bn else plain_suffix[param]
    return f"{prefix}res{stage}_{block}_{layer}_{suffix}"


def test_caffe2_names_from_pyslowfast_docs():
    assert caffe2_to_pyslowfast_name("conv1_w") == "s1.pathway0_stem.conv.weight"
    assert caffe2_to_pyslowfast_name("t_res_conv1_bn_riv") == "s1.pathway1_stem.bn.running_var"
    assert caffe2_to_pyslowfast_name("res4_0_branch1_w") == "s4.pathway0_res0.branch1.weight"
    assert caffe2_to_pyslowfast_name("res4_4_branch2c_bn_b") == "s4.pathway0_res4.branch2.c_bn.bias"
    assert caffe2_to_pyslowfast_name("t_pool1_subsample_bn_rm") == "s1_fuse.bn.running_mean"
    assert (
        caffe2_to_pyslowfast_name("t_res4_5_branch2c_bn_subsample_w") == "s4_fuse.conv_f2s.weight"
    )
    assert (
        caffe2_to_pyslowfast_name("nonlocal_conv4_6_theta_b")
        == "s4.pathway0_nonlocal6.conv_theta.bias"
    )
    assert caffe2_to_pyslowfast_name("nonlocal_conv4_13_bn_s") == "s4.pathway0_nonlocal13.bn.weight"
    assert caffe2_to_pyslowfast_name("pred_w") == "head.projection.weight"
    assert caffe2_to_pyslowfast_name("res4_0_branch2a_w_momentum") is None


def test_caffe2_pickle_round_trip(tmp_path):
    source = _model(seed=0)
    fast_blocks = {
        s: len([n for n in dict(source.named_children())[f"s{s}"]._modules if "pathway1_res" in n])
        for s in (2, 3, 4)
    }
    blobs = {}
    for name, value in source.state_dict().items():
        c2 = _caffe2_name(name, fast_blocks)
        if c2 is not None:
            blobs[c2] = value.numpy().copy()
            if not name.endswith(("running_mean", "running_var")):
                blobs[c2 + "_momentum"] = value.numpy() * 0  # solver state, to be skipped
    blobs["lr"] = torch.tensor([0.1]).numpy()
    blobs["model_iter"] = torch.tensor([1000]).numpy()
    path = tmp_path / "SLOWFAST_32x2_R50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    report = _assert_loaded_identically(source, path)
    assert report.format == "caffe2"

    # A blob that names no parameter is reported (and refused in strict mode).
    blobs["res9_0_branch2z_w"] = blobs["conv1_w"]
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    with pytest.raises(CheckpointError, match=r"SLOWFAST_32x2_R50\.pkl[\s\S]*res9_0_branch2z_w"):
        load_checkpoint(path, _model(seed=1))
    assert "res9_0_branch2z_w" in load_checkpoint(path, _model(seed=1), strict=False).unexpected


def test_pytorchvideo_state_dict_round_trip(tmp_path):
    pytest.importorskip("pytorchvideo")
    from pytorchvideo.models.slowfast import create_slowfast_with_roi_head

    # slowfast_r50_detection's layout at 1/8 width for 8 frames (Slow 2); same settings as
    # SLOWFAST_TINY without its non-local block.
    torch.manual_seed(0)
    ptv = create_slowfast_with_roi_head(
        stem_dim_outs=(8, 1), head_pool_kernel_sizes=((2, 1, 1), (8, 1, 1))
    )
    with torch.no_grad():
        for m in ptv.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    ptv.eval()
    path = tmp_path / "SLOWFAST_8x8_R50_DETECTION.pyth"
    torch.save({"model_state": ptv.state_dict()}, path)
    ours = _model(1, TINY, "NONLOCAL.LOCATION", "[[[], []], [[], []], [[], []], [[], []]]")
    report = load_checkpoint(path, ours)
    assert report.format == "pytorchvideo" and report.ok
    inputs, boxes = _inputs()
    with torch.no_grad():
        expected = ptv([x.clone() for x in inputs], boxes)
        got = ours(inputs, boxes)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_full_size_pytorchvideo_detection_weights_fit_slowfast_32x2_r50(tmp_path):
    pytest.importorskip("pytorchvideo")
    from pytorchvideo.models.slowfast import create_slowfast_with_roi_head

    path = tmp_path / "ptv.pt"
    torch.save(create_slowfast_with_roi_head().state_dict(), path)
    model = build_model(load_config(str(CONFIGS / "AVA/SLOWFAST_32x2_R50.yaml")))
    report = load_checkpoint(path, model)
    assert report.ok and len(report.loaded) == len(model.state_dict())


def test_strict_errors_name_file_and_keys(tmp_path):
    path = tmp_path / "slowfast.pyth"
    torch.save({"model_state": _model(seed=0).state_dict()}, path)
    slow = build_model(load_config(str(CONFIGS / "test/SLOW_TINY.yaml")))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, slow)
    message = str(err.value)
    assert "slowfast.pyth" in message
    assert "s1_fuse.conv_f2s.weight" in message  # unexpected
    assert "s2.pathway0_res0.branch1.weight (32, 10, 1, 1, 1) vs model (32, 8, 1, 1, 1)" in message
    wider = _model(2, TINY, "RESNET.WIDTH_PER_GROUP", "16")
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"s1\.pathway0_stem\.conv\.weight \(8, 3, 1, 7, 7\)"):
        load_checkpoint(path, wider)
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())

    report = load_checkpoint(path, slow, strict=False)
    assert "s1_fuse.conv_f2s.weight" in report.unexpected
    assert any(name == "s2.pathway0_res0.branch1.weight" for name, _, _ in report.mismatched)
    assert "s1.pathway0_stem.conv.weight" in report.loaded


def test_missing_keys_are_named(tmp_path):
    state = _model(seed=0).state_dict()
    del state["head.projection.bias"]
    path = tmp_path / "partial.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(
        CheckpointError, match=r"partial\.pyth[\s\S]*missing[\s\S]*head\.projection\.bias"
    ):
        load_checkpoint(path, _model(seed=1))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickle", "caffe2_blob", "torch_zip", "torch_legacy"])
def test_malicious_pickles_are_refused_without_running(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    evil = _Evil(marker)
    if kind == "pickle":
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)
    elif kind == "caffe2_blob":
        with open(path, "wb") as f:
            pickle.dump({"blobs": {"conv1_w": evil}}, f, protocol=2)
    else:
        torch.save({"model_state": evil}, path, _use_new_zipfile_serialization=kind == "torch_zip")
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pkl"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path, _model(seed=0))
    assert not marker.exists()


def test_unreadable_files_are_reported(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pyth")
    junk = tmp_path / "junk.pyth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pyth"):
        read_checkpoint(junk)
    listed = tmp_path / "list.pyth"
    torch.save([1, 2], listed)
    with pytest.raises(CheckpointError, match="expected a dict"):
        read_checkpoint(listed)


def _ava_checkpoint(tmp_path: Path, num_classes: int = 80) -> tuple[Path, dict]:
    """A PySlowFast-format .pyth of the tiny SlowFast with an AVA-sized head whose rows differ
    (random weights, bias = the action id), and its state dict."""
    source = _model(0, TINY, "MODEL.NUM_CLASSES", str(num_classes))
    state = source.state_dict()
    with torch.no_grad():
        state["head.projection.bias"].copy_(torch.arange(1, num_classes + 1, dtype=torch.float32))
    path = tmp_path / "SLOWFAST_AVA.pyth"
    torch.save({"epoch": 19, "model_state": state}, path)
    return path, state


def test_a_head_of_another_size_is_reinitialized_and_said_so(tmp_path):
    path, state = _ava_checkpoint(tmp_path)
    target = _model(1, TINY, "MODEL.NUM_CLASSES", "5")
    fresh_head = target.head.projection.weight.detach().clone()
    report = load_checkpoint(path, target, strict=False)
    assert report.head == "head.projection: checkpoint 80 classes, model 5: re-initialized"
    assert report.problems() == report.head  # the head's line replaces its shape mismatches
    assert torch.equal(target.head.projection.weight, fresh_head)
    assert torch.equal(target.s1.pathway0_stem.conv.weight, state["s1.pathway0_stem.conv.weight"])
    with pytest.raises(CheckpointError, match=r"checkpoint 80 classes, model 5: re-initialized"):
        load_checkpoint(path, _model(1, TINY, "MODEL.NUM_CLASSES", "5"))


def test_class_map_copies_the_chosen_rows_and_reinitializes_the_others(tmp_path):
    path, state = _ava_checkpoint(tmp_path)
    target = _model(1, TINY, "MODEL.NUM_CLASSES", "4")
    fresh_weight = target.head.projection.weight.detach().clone()
    fresh_bias = target.head.projection.bias.detach().clone()
    report = load_checkpoint(path, target, class_map=[(1, 12), (3, 80), (4, 11)])
    assert report.ok  # strict: the head fits once mapped, everything else matches
    weight, bias = target.head.projection.weight, target.head.projection.bias
    for new_id, old_id in [(1, 12), (3, 80), (4, 11)]:
        assert torch.equal(weight[new_id - 1], state["head.projection.weight"][old_id - 1])
        assert bias[new_id - 1].item() == old_id
    assert torch.equal(weight[1], fresh_weight[1]) and bias[1] == fresh_bias[1]
    assert report.head == (
        "head.projection: checkpoint 80 classes, model 4: rows copied (new id <- checkpoint id) "
        "1<-12, 3<-80, 4<-11; 1 re-initialized"
    )
    assert "head.projection.weight" in report.loaded


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([(1, 81)], r"class map \[1, 81\]: checkpoint id 81 is not in 1\.\.80 \(.*AVA\.pyth"),
        ([(6, 3)], r"class map \[6, 3\]: new id 6 is not in 1\.\.5"),
    ],
)
def test_class_map_ids_outside_either_head_are_errors(tmp_path, pairs, expected):
    path, _ = _ava_checkpoint(tmp_path)
    target = _model(1, TINY, "MODEL.NUM_CLASSES", "5")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path, target, strict=False, class_map=pairs)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
