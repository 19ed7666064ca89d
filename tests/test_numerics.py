"""Settings and layers that change test scores, pinned against PySlowFast.

The expected config values are PySlowFast's published AVA configs, facebookresearch/SlowFast
at commit 287ec0076846560f44a9327e931a5a2360240533, configs/AVA/c2/<NAME>.yaml, plus
slowfast/config/defaults.py for the keys those files leave at their default (DATA.MEAN,
DATA.STD, AVA.TRAIN_USE_COLOR_AUGMENTATION). The non-local block is checked against the
formula of PySlowFast's slowfast/models/nonlocal_helper.py, written out with plain tensor ops.
"""

from pathlib import Path

import pytest
import torch

from detection.config import load_config
from detection.models import NonLocal

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "AVA"

# Every published config: these keys decide the clip, its pixels, the boxes and the RoI head.
_COMMON = {
    "DATA.SAMPLING_RATE": 2,
    "DATA.TRAIN_JITTER_SCALES": [256, 320],
    "DATA.TRAIN_CROP_SIZE": 224,
    "DATA.TEST_CROP_SIZE": 256,
    "DATA.MEAN": [0.45, 0.45, 0.45],
    "DATA.STD": [0.225, 0.225, 0.225],
    "DATA.INPUT_CHANNEL_NUM": [3, 3],
    "DETECTION.ALIGNED": False,
    "AVA.BGR": False,
    "AVA.DETECTION_SCORE_THRESH": 0.8,
    "AVA.TEST_PREDICT_BOX_LISTS": [
        "person_box_67091280_iou90/ava_detection_val_boxes_and_labels.csv"
    ],
    "AVA.TRAIN_USE_COLOR_AUGMENTATION": False,
    "MODEL.ARCH": "slowfast",
    "MODEL.NUM_CLASSES": 80,
    "MODEL.HEAD_ACT": "sigmoid",
    "SLOWFAST.ALPHA": 4,
    "SLOWFAST.BETA_INV": 8,
    "SLOWFAST.FUSION_CONV_CHANNEL_RATIO": 2,
    "RESNET.SPATIAL_DILATIONS": [[1, 1], [1, 1], [1, 1], [2, 2]],
    "RESNET.SPATIAL_STRIDES": [[1, 1], [2, 2], [2, 2], [1, 1]],
    "NONLOCAL.GROUP": [[1, 1], [1, 1], [1, 1], [1, 1]],
    "NONLOCAL.INSTANTIATION": "dot_product",
}
_NONLOCAL_R101 = {
    "RESNET.DEPTH": 101,
    "SLOWFAST.FUSION_KERNEL_SZ": 5,
    "NONLOCAL.LOCATION": [[[], []], [[], []], [[6, 13, 20], []], [[], []]],
    "NONLOCAL.POOL": [[[2, 2, 2], [2, 2, 2]]] * 4,
}
PYSLOWFAST = {
    # configs/AVA/c2/SLOWFAST_32x2_R101_50_50.yaml (model zoo: 29.1 mAP, AVA v2.2)
    "SLOWFAST_32x2_R101_50_50": {**_COMMON, **_NONLOCAL_R101, "DATA.NUM_FRAMES": 32},
    # configs/AVA/c2/SLOWFAST_64x2_R101_50_50.yaml (model zoo: 29.4 mAP)
    "SLOWFAST_64x2_R101_50_50": {**_COMMON, **_NONLOCAL_R101, "DATA.NUM_FRAMES": 64},
    # configs/AVA/c2/SLOWFAST_32x2_R50.yaml
    "SLOWFAST_32x2_R50": {
        **_COMMON,
        "DATA.NUM_FRAMES": 32,
        "RESNET.DEPTH": 50,
        "SLOWFAST.FUSION_KERNEL_SZ": 7,
        "NONLOCAL.LOCATION": [[[], []], [[], []], [[], []], [[], []]],
    },
    # configs/AVA/c2/SLOW_8x8_R50.yaml (model zoo: Slow R50 "4 x 16", 19.5 mAP): 4 frames at
    # stride 16, a stricter person threshold and the iou75 boxes.
    "SLOW_8x8_R50": {
        **{k: v for k, v in _COMMON.items() if not k.startswith(("SLOWFAST.", "NONLOCAL."))},
        "DATA.NUM_FRAMES": 4,
        "DATA.SAMPLING_RATE": 16,
        "DATA.INPUT_CHANNEL_NUM": [3],
        "AVA.DETECTION_SCORE_THRESH": 0.9,
        "AVA.TEST_PREDICT_BOX_LISTS": [
            "person_box_67091280_iou75/ava_detection_val_boxes_and_labels.csv"
        ],
        "MODEL.ARCH": "slow",
        "RESNET.DEPTH": 50,
        "RESNET.SPATIAL_DILATIONS": [[1], [1], [1], [2]],
        "RESNET.SPATIAL_STRIDES": [[1], [2], [2], [1]],
        "NONLOCAL.LOCATION": [[[]], [[]], [[]], [[]]],
        "NONLOCAL.GROUP": [[1], [1], [1], [1]],
        "NONLOCAL.INSTANTIATION": "softmax",
    },
}


def test_every_published_config_is_pinned():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(PYSLOWFAST)


@pytest.mark.parametrize("name", sorted(PYSLOWFAST))
def test_ava_config_has_pyslowfasts_published_values(name):
    cfg = load_config(str(CONFIGS / f"{name}.yaml"))
    for key, expected in PYSLOWFAST[name].items():
        section, field = key.split(".")
        assert cfg[section][field] == expected, key


def _conv1x1(state: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    weight = state[f"{name}.weight"][:, :, 0, 0, 0]
    return torch.einsum("oc,ncthw->nothw", weight, x) + state[f"{name}.bias"].view(1, -1, 1, 1, 1)


def _max_pool(x: torch.Tensor, pool: tuple[int, int, int]) -> torch.Tensor:
    n, c, t, h, w = x.shape
    pt, ph, pw = pool
    blocks = x.reshape(n, c, t // pt, pt, h // ph, ph, w // pw, pw)
    return blocks.amax(dim=(3, 5, 7))


def _nonlocal_reference(
    state: dict, x: torch.Tensor, pool: tuple[int, int, int], instantiation: str, eps: float
) -> torch.Tensor:
    """x + BN(W_out (f(theta(x)^T phi(p)) g(p)^T)), p = max-pooled x, f = softmax of the
    affinities scaled by dim_inner^-1/2, or the affinities divided by their count."""
    n, _, t, h, w = x.shape
    theta = _conv1x1(state, "conv_theta", x).flatten(2)  # [N, C', THW]
    pooled = _max_pool(x, pool)
    phi = _conv1x1(state, "conv_phi", pooled).flatten(2)  # [N, C', P]
    g = _conv1x1(state, "conv_g", pooled).flatten(2)
    affinity = torch.einsum("ncl,ncp->nlp", theta, phi)
    if instantiation == "softmax":
        affinity = torch.softmax(affinity / theta.shape[1] ** 0.5, dim=2)
    else:
        affinity = affinity / phi.shape[2]
    y = torch.einsum("nlp,ncp->ncl", affinity, g).reshape(n, -1, t, h, w)
    out = _conv1x1(state, "conv_out", y)
    shape = (1, -1, 1, 1, 1)
    scale = state["bn.weight"] / torch.sqrt(state["bn.running_var"] + eps)
    out = (out - state["bn.running_mean"].view(shape)) * scale.view(shape)
    return x + out + state["bn.bias"].view(shape)


@pytest.mark.parametrize("instantiation", ["dot_product", "softmax"])
@pytest.mark.parametrize("pool", [(2, 2, 2), (1, 2, 2), (1, 1, 1)])
def test_nonlocal_block_equals_the_formula_written_out(instantiation, pool):
    torch.manual_seed(0)
    block = NonLocal(6, 3, pool_size=pool, instantiation=instantiation).double()
    with torch.no_grad():  # a random output BN, so that the non-local branch is not zeroed
        block.bn.weight.normal_(1.0, 0.5)
        block.bn.bias.normal_(0.0, 0.5)
        block.bn.running_mean.normal_(0.0, 0.5)
        block.bn.running_var.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(2, 6, 4, 6, 4, dtype=torch.float64)
    state = {k: v.detach() for k, v in block.state_dict().items()}
    with torch.no_grad():
        out = block(x)
    expected = _nonlocal_reference(state, x, pool, instantiation, eps=1e-5)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert (out - x).abs().max() > 0.1  # the non-local branch contributes
