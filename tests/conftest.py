from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared/` beside the project (real AVA lists and OpenCV's vtest.avi)."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: tests need ../shared/ beside the project")
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
