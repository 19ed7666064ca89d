from dataclasses import replace
from pathlib import Path

import pytest
import torch
from model_helpers import randomize_batchnorm

from detection.config import get_cfg, load_config
from detection.models import (
    FAST_PATHWAY,
    SLOW_PATHWAY,
    Lateral,
    Pathway,
    PathwayResNet,
    ResNetRoIHead,
    ResStage,
    Slow,
    SlowFast,
    block_temporal_kernels,
    build_model,
)
from detection.models.optimize import optimize_for_inference

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _build(name: str, *opts: str):
    torch.manual_seed(0)
    return build_model(load_config(str(CONFIGS / name), list(opts)))


def _n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, expected",
    [
        ("AVA/SLOWFAST_32x2_R101_50_50.yaml", 59_342_488),
        ("AVA/SLOWFAST_64x2_R101_50_50.yaml", 59_342_488),
        ("AVA/SLOWFAST_32x2_R50.yaml", 33_828_888),
        ("AVA/SLOW_8x8_R50.yaml", 31_798_416),
    ],
)
def test_parameter_counts_equal_pyslowfast(name, expected):
    assert _n_params(_build(name)) == expected


def test_state_dict_names_and_shapes_follow_pyslowfast():
    sd = _build("AVA/SLOWFAST_32x2_R101_50_50.yaml").state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["s1.pathway0_stem.conv.weight"] == (64, 3, 1, 7, 7)
    assert shapes["s1.pathway1_stem.conv.weight"] == (8, 3, 5, 7, 7)
    # Lateral: time-strided 5x1x1 conv from 8 Fast channels to 16.
    assert shapes["s1_fuse.conv_f2s.weight"] == (16, 8, 5, 1, 1)
    assert shapes["s2.pathway0_res0.branch1.weight"] == (256, 80, 1, 1, 1)
    assert shapes["s2.pathway1_res0.branch2.a_bn.running_mean"] == (8,)
    # Slow res2 is 2D; Fast res2 is 3D.
    assert shapes["s2.pathway0_res0.branch2.a.weight"][2] == 1
    assert shapes["s2.pathway1_res0.branch2.a.weight"][2] == 3
    # R101 res4: the first 6 of 23 blocks are temporal (NUM_BLOCK_TEMP_KERNEL), the rest are not.
    assert shapes["s4.pathway0_res5.branch2.a.weight"][2] == 3
    assert shapes["s4.pathway0_res6.branch2.a.weight"][2] == 1
    assert shapes["s4.pathway0_res22.branch2.a.weight"][2] == 1
    for i in (6, 13, 20):
        assert shapes[f"s4.pathway0_nonlocal{i}.conv_theta.weight"] == (512, 1024, 1, 1, 1)
        assert f"s4.pathway0_nonlocal{i}.bn.running_var" in shapes
    assert not any(k.startswith("s4.pathway1_nonlocal") for k in shapes)
    assert "s4_fuse.bn.running_var" in shapes and not any(k.startswith("s5_fuse") for k in shapes)
    assert shapes["head.projection.weight"] == (80, 2048 + 256)
    assert all(
        k.split(".")[0]
        in {"s1", "s2", "s3", "s4", "s5", "s1_fuse", "s2_fuse", "s3_fuse", "s4_fuse", "head"}
        for k in shapes
    )


def test_res5_keeps_resolution_with_dilation():
    model = _build("AVA/SLOWFAST_32x2_R50.yaml")
    conv_b = model.s5.pathway0_res0.branch2.b
    assert conv_b.stride == (1, 1, 1) and conv_b.dilation == (1, 2, 2)
    assert model.s4.pathway1_res0.branch2.b.stride == (1, 2, 2)


def test_narrow_override_gives_pyslowfast_shapes():
    # With WIDTH_PER_GROUP 8, PySlowFast's formulas give a 1-channel Fast stem and Slow res2
    # inputs of 8 + 8 // (BETA_INV // FUSION_CONV_CHANNEL_RATIO) = 10 channels.
    model = _build("AVA/SLOWFAST_32x2_R101_50_50.yaml", "RESNET.WIDTH_PER_GROUP", "8")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["s1.pathway1_stem.conv.weight"] == (1, 3, 5, 7, 7)
    assert shapes["s1_fuse.conv_f2s.weight"] == (2, 1, 5, 1, 1)
    assert shapes["s2.pathway0_res0.branch1.weight"] == (32, 10, 1, 1, 1)
    assert shapes["s3.pathway0_res0.branch1.weight"] == (64, 40, 1, 1, 1)
    assert shapes["s4.pathway0_nonlocal6.conv_out.weight"] == (128, 64, 1, 1, 1)
    assert shapes["head.projection.weight"] == (80, 256 + 32)


def test_block_temporal_kernels_rule():
    assert block_temporal_kernels([3], 23, 6) == [3] * 6 + [1] * 17
    assert block_temporal_kernels([1], 3, 3) == [1, 1, 1]
    assert block_temporal_kernels([3, 1], 4, 3) == [3, 1, 3, 1]
    with pytest.raises(ValueError, match="NUM_BLOCK_TEMP_KERNEL"):
        block_temporal_kernels([3], 3, 4)


def _clips(batch=2, t_fast=8, size=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    fast = torch.randn(batch, 3, t_fast, size, size, generator=g)
    return [fast[:, :, ::4].contiguous(), fast]


BOXES = torch.tensor(
    [[0, 4.0, 6.0, 40.0, 60.0], [1, 20.0, 10.0, 63.0, 50.0], [1, 0.0, 0.0, 64.0, 64.0]]
)


def test_slowfast_forward_contract():
    model = _build("test/SLOWFAST_TINY.yaml").eval()
    assert model.num_pathways == 2
    with torch.no_grad():
        scores = model(_clips(), BOXES)
    assert scores.shape == (3, 80)
    assert ((scores > 0) & (scores < 1)).all()


def test_boxes_read_the_clip_of_their_batch_index():
    model = _build("test/SLOWFAST_TINY.yaml").eval()
    slow, fast = _clips()
    with torch.no_grad():
        both = model([slow, fast], BOXES)
        second_only = model([slow[1:], fast[1:]], BOXES[1:] - torch.tensor([1.0, 0, 0, 0, 0]))
    torch.testing.assert_close(both[1:], second_only, rtol=1e-5, atol=1e-6)


def test_train_mode_returns_logits_of_the_eval_scores():
    model = _build("test/SLOWFAST_TINY.yaml", "MODEL.DROPOUT_RATE", "0.0").eval()
    with torch.no_grad():
        scores = model(_clips(), BOXES)
        model.head.train()
        logits = model(_clips(), BOXES)
    assert (logits < 0).any()
    torch.testing.assert_close(torch.sigmoid(logits), scores)


def test_slow_only_forward_and_names():
    model = _build("test/SLOW_TINY.yaml").eval()
    assert model.num_pathways == 1
    keys = set(model.state_dict())
    assert "s1.pathway0_stem.conv.weight" in keys and not any(
        "pathway1" in k or "fuse" in k for k in keys
    )
    with torch.no_grad():
        scores = model([torch.randn(2, 3, 4, 64, 64)], BOXES)
    assert scores.shape == (3, 80)


def test_roi_head_uses_input_pixels_at_stride_16():
    head = ResNetRoIHead(
        [1], num_classes=1, resolution=7, spatial_scale_factor=16, aligned=False
    ).eval()
    with torch.no_grad():
        head.projection.weight.fill_(1.0)
        head.projection.bias.zero_()
    features = torch.zeros(1, 1, 2, 4, 8)
    features[0, 0, :, 2, 5] = 3.0  # feature cell (y=2, x=5) = pixels x 80..96, y 32..48
    hit = torch.tensor([[0, 80.0, 32.0, 96.0, 48.0]])
    miss_swapped_xy = torch.tensor([[0, 32.0, 80.0, 48.0, 96.0]])
    head.act = "none"
    with torch.no_grad():
        # Bilinear sampling inside the cell reads most of its value; the swapped box reads none.
        assert head([features], hit).item() > 2.0
        assert head([features], miss_swapped_xy).item() == 0.0


def test_input_errors_are_explained():
    model = _build("test/SLOWFAST_TINY.yaml").eval()
    slow, fast = _clips()
    with pytest.raises(ValueError, match="list of 2 pathway"):
        model([fast], BOXES)
    with pytest.raises(ValueError, match="alpha=4"):
        model([slow, fast[:, :, :4]], BOXES)
    with pytest.raises(ValueError, match=r"\[K, 5\]"):
        model([slow, fast], BOXES[:, 1:])


def test_single_pathway_lists_are_required_for_slow_arch():
    with pytest.raises(ValueError, match="RESNET.NUM_BLOCK_TEMP_KERNEL"):
        _build("AVA/SLOWFAST_32x2_R50.yaml", "MODEL.ARCH", "slow", "DATA.INPUT_CHANNEL_NUM", "[3]")


def test_temporal_kernel_basis_sets_each_stage_and_controls_temporal_mixing():
    ones = "[[1], [1], [1], [1], [1]]"
    threes = "[[3], [3], [3], [3], [3]]"
    frames = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(3))
    reversed_frames = frames.flip(2)
    box = BOXES[:1]
    scores = {}
    for name, basis in (("ones", ones), ("threes", threes)):
        model = _build("test/SLOW_TINY.yaml", "RESNET.TEMPORAL_KERNEL_BASIS", basis).eval()
        k = 1 if name == "ones" else 3
        assert model.s1.pathway0_stem.conv.weight.shape[2] == k
        assert model.s2.pathway0_res0.branch2.a.weight.shape[2] == k
        assert model.s5.pathway0_res0.branch2.a.weight.shape[2] == k
        with torch.no_grad():
            scores[name] = (model([frames], box), model([reversed_frames], box))
    # Without temporal kernels the network sees a bag of frames; with them, their order.
    torch.testing.assert_close(*scores["ones"])
    assert (scores["threes"][0] - scores["threes"][1]).abs().max() > 1e-4

    model = _build(
        "test/SLOWFAST_TINY.yaml",
        "RESNET.TEMPORAL_KERNEL_BASIS",
        "[[3, 5], [3, 3], [3, 3], [3, 3], [3, 3]]",
    ).eval()
    assert model.s1.pathway0_stem.conv.weight.shape[2] == 3
    assert model.s1.pathway1_stem.conv.weight.shape[2] == 5
    assert model.s3.pathway0_res0.branch2.a.weight.shape[2] == 3
    with torch.no_grad():
        assert model(_clips(), BOXES).shape == (3, 80)
    # The default is the paper's: Slow pathway 2D until res4.
    default = _build("test/SLOWFAST_TINY.yaml")
    assert default.s3.pathway0_res0.branch2.a.weight.shape[2] == 1
    assert default.s4.pathway0_res0.branch2.a.weight.shape[2] == 3


@pytest.mark.parametrize(
    "config, basis",
    [
        ("test/SLOW_TINY.yaml", "[[3], [3], [3], [3]]"),  # conv1 missing
        ("test/SLOW_TINY.yaml", "[[3], [2], [3], [3], [3]]"),  # even: would change T
        ("test/SLOWFAST_TINY.yaml", "[[3], [3], [3], [3], [3]]"),  # one pathway for two
    ],
)
def test_bad_temporal_kernel_basis_names_the_key(config, basis):
    with pytest.raises(ValueError, match="RESNET.TEMPORAL_KERNEL_BASIS"):
        _build(config, "RESNET.TEMPORAL_KERNEL_BASIS", basis)


def test_classes_are_usable_without_config():
    model = SlowFast(lateral=Lateral(alpha=4), num_classes=5, width_per_group=8).eval()
    with torch.no_grad():
        assert model(_clips(), BOXES).shape == (3, 5)


def _slow_only_defaults():
    """get_cfg() for MODEL.ARCH slow: the Slow pathway's entry of every per-pathway default."""
    cfg = get_cfg()
    cfg.MODEL.ARCH = "slow"
    cfg.DATA.INPUT_CHANNEL_NUM = cfg.DATA.INPUT_CHANNEL_NUM[:1]
    for key in ("NUM_BLOCK_TEMP_KERNEL", "SPATIAL_STRIDES", "SPATIAL_DILATIONS"):
        cfg.RESNET[key] = [stage[:1] for stage in cfg.RESNET[key]]
    for key in ("LOCATION", "GROUP", "POOL"):
        cfg.NONLOCAL[key] = [stage[:1] for stage in cfg.NONLOCAL[key]]
    return cfg


@pytest.mark.parametrize("arch", ["slowfast", "slow"])
def test_constructor_defaults_are_the_config_defaults(arch):
    # One non-local block on each side, so that NONLOCAL.INSTANTIATION shows in the outputs.
    cfg = get_cfg() if arch == "slowfast" else _slow_only_defaults()
    cfg.NONLOCAL.LOCATION[2][0] = [1]
    slow = replace(SLOW_PATHWAY, nonlocal_location=((), (), (1,), ()))
    torch.manual_seed(0)
    built = build_model(cfg)
    torch.manual_seed(0)
    constructed = SlowFast(slow) if arch == "slowfast" else Slow(slow)
    assert type(constructed) is type(built)

    # Small clips keep the full-size networks quick: 32 px (res5 2 x 2), Slow 2 frames.
    fast = torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(1))
    boxes = BOXES * torch.tensor([1, 0.5, 0.5, 0.5, 0.5])
    # The config's frame-rate ratio: a network with another alpha refuses these inputs.
    slow = fast[:, :, :: cfg.SLOWFAST.ALPHA]
    inputs = [slow, fast] if arch == "slowfast" else [slow]
    outputs = []
    for model in (built, constructed):
        with torch.no_grad():
            scores = model.eval()(inputs, boxes)  # RoIAlign alignment, head activation
            torch.manual_seed(2)
            logits = model.train()(inputs, boxes)  # dropout; BN momentum updates the stats
        outputs.append((scores, logits, model.state_dict()))
    (scores_a, logits_a, state_a), (scores_b, logits_b, state_b) = outputs
    assert [(k, v.shape) for k, v in state_a.items()] == [(k, v.shape) for k, v in state_b.items()]
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert torch.equal(scores_a, scores_b) and torch.equal(logits_a, logits_b)


def test_injected_head_gets_the_res5_features_of_every_pathway():
    class MeanHead(torch.nn.Module):
        """Scores every box with the mean of each pathway's features (one column per pathway)."""

        def forward(self, features, boxes):
            return torch.stack([f.mean() for f in features]).expand(len(boxes), -1)

    pathways = (SLOW_PATHWAY, FAST_PATHWAY)
    model = SlowFast(*pathways, lateral=Lateral(alpha=4), width_per_group=8, head=MeanHead())
    model = randomize_batchnorm(model)
    with torch.no_grad():
        features = model.features(_clips())
        scores = model(_clips(), BOXES)
    assert [f.shape[1] for f in features] == PathwayResNet.feature_dims(pathways, 8) == [256, 32]
    assert [tuple(f.shape[2:]) for f in features] == [(2, 4, 4), (8, 4, 4)]
    torch.testing.assert_close(scores[1], torch.stack([f.mean() for f in features]))
    with pytest.raises(ValueError, match="num_classes"):
        SlowFast(head=MeanHead(), num_classes=5)


def test_laterals_are_what_joins_the_pathways():
    slow, fast = _clips()
    other_fast = fast.flip(2)
    torch.manual_seed(0)
    apart = PathwayResNet((SLOW_PATHWAY, FAST_PATHWAY), width_per_group=8)
    torch.manual_seed(0)
    joined = PathwayResNet(
        (SLOW_PATHWAY, FAST_PATHWAY), lateral=Lateral(alpha=4), width_per_group=8
    )
    assert not any("fuse" in k for k in apart.state_dict())
    assert apart.head.projection.weight.shape == joined.head.projection.weight.shape == (80, 288)
    with torch.no_grad():
        for model in (apart.eval(), joined.eval()):
            a = model.features([slow, fast])[0]
            b = model.features([slow, other_fast])[0]
            # Without laterals the Slow pathway never sees the Fast clip.
            assert torch.equal(a, b) == (model is apart)


def test_bad_pathways_are_explained():
    with pytest.raises(ValueError, match="Pathway.temporal_kernel_basis"):
        Pathway(temporal_kernel_basis=(1, 1, 3, 3))
    with pytest.raises(ValueError, match="Pathway.spatial_strides"):
        Pathway(spatial_strides=[1, 2, 2])
    with pytest.raises(ValueError, match="2 pathways"):
        PathwayResNet((SLOW_PATHWAY,), lateral=Lateral())


def test_nonlocal_group_attends_within_time_chunks():
    torch.manual_seed(0)
    stage = ResStage(
        dim_in=[8],
        dim_out=[8],
        dim_inner=[4],
        temporal_kernels=[[1]],
        spatial_strides=[1],
        dilations=[1],
        nonlocal_indices=[[0]],
        nonlocal_groups=[2],
        nonlocal_pools=[(1, 2, 2)],
    ).eval()
    torch.nn.init.normal_(stage.pathway0_nonlocal0.bn.weight)
    x = torch.randn(1, 8, 4, 6, 6)
    with torch.no_grad():
        y = stage([x])[0]
        block = stage.pathway0_res0(x)
        expected = torch.cat(
            [stage.pathway0_nonlocal0(block[:, :, :2]), stage.pathway0_nonlocal0(block[:, :, 2:])],
            2,
        )
    torch.testing.assert_close(y, expected)


@pytest.mark.parametrize("name", ["test/SLOWFAST_TINY.yaml", "test/SLOW_TINY.yaml"])
def test_inference_copy_gives_the_same_scores(name):
    model = randomize_batchnorm(_build(name, "RESNET.STRIDE_1X1", "True"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast_model = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fast_model.modules())
    slow, fast = _clips()
    inputs = [slow, fast] if model.num_pathways == 2 else [fast[:, :, :4]]
    with torch.no_grad():
        expected = model(inputs, BOXES)
        got = fast_model(inputs, BOXES)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
