from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared/` beside the project: the real AVA lists (data/ava/) and OpenCV's vtest.avi
    (media/). Only the tests that read those files ask for it, and they are skipped without it
    (a checkout on its own still runs the rest: label maps come with the package)."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is missing (real AVA lists and vtest.avi live there)")
    return SHARED


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def synthetic_ava(tmp_path_factory):
    """A small generated AVA-format dataset, written once per test session: 3 videos (2 train,
    1 val) of 6 s at 30 fps, 160x120, keyframes 902-904, with JPEG frames for the frames backend.
    Seed 4 gives 4 annotated train keyframes (an even number, so 2 ranks split them evenly) and
    2 val keyframes, the others being excluded timestamps; tests/test_synthetic.py checks this.
    Returns `detection.data.synthetic.SyntheticAva` (`.root` is DATA.PATH_TO_DATA_DIR)."""
    from detection.data.synthetic import generate_synthetic_ava

    root = tmp_path_factory.mktemp("synthetic_ava")
    return generate_synthetic_ava(
        root, num_videos=3, num_val=1, seconds=6, seed=4, write_frames=True, progress=False
    )


# --- person detector weights: random networks in the official file formats --------------------


def _box_predictor_says_person(predictor, person_index: int) -> None:
    """Make a Faster R-CNN box predictor (torchvision's or Detectron2's: both have `cls_score`
    and `bbox_pred` linear layers) score every proposal as the person class with logit 6 over
    zeros, and regress no offset, so proposals come out as they went in."""
    import torch

    with torch.no_grad():
        predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.zero_()
        predictor.cls_score.bias[person_index] = 6.0
        predictor.bbox_pred.weight.zero_()
        predictor.bbox_pred.bias.zero_()


def _save_random_frcnn(path: Path, arch: str) -> dict:
    """A randomly initialized torchvision Faster R-CNN whose box classifier says "person"
    (label 1) for every proposal and whose box regressor keeps proposals as they are, so the
    person path runs end to end without the official weights. Returns its state dict."""
    import torch
    from torchvision.models import detection

    torch.manual_seed(0)
    model = getattr(detection, arch)(weights=None, weights_backbone=None)
    # Person score e^6 / (e^6 + 90) = 0.82.
    _box_predictor_says_person(model.roi_heads.box_predictor, person_index=1)
    state = model.state_dict()
    torch.save(state, path)
    return state


@pytest.fixture(scope="session")
def save_random_frcnn():
    """`save_random_frcnn(path, arch) -> state_dict`: writes a torchvision weights file."""
    return _save_random_frcnn


@pytest.fixture(scope="session")
def detectron2_zoo_state():
    """A model-zoo-format state dict ({name: ndarray}) of a randomly initialized
    faster_rcnn_R_50_FPN_3x whose box classifier says "person" (class 0) for every proposal
    and whose box regressor keeps proposals as they are."""
    pytest.importorskip("detectron2")
    import torch
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from detection.person.detectron2_rcnn import DEFAULT_CONFIG, resolve_config

    cfg = get_cfg()
    cfg.merge_from_file(str(resolve_config(DEFAULT_CONFIG)))
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    model = build_model(cfg)
    # Person score e^6 / (e^6 + 80) = 0.8345.
    _box_predictor_says_person(model.roi_heads.box_predictor, person_index=0)
    return {name: value.numpy() for name, value in model.state_dict().items()}


@pytest.fixture(scope="session")
def write_zoo_pickle():
    """`write_zoo_pickle(path, state) -> path`: a Detectron2 model-zoo pickle
    ({"model": {name: ndarray}, "__author__": ...}) as `model_final_*.pkl` files are."""

    def write(path: Path, state: dict) -> Path:
        import pickle

        with path.open("wb") as f:
            pickle.dump({"model": state, "__author__": "test"}, f)
        return path

    return write
