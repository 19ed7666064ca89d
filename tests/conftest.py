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
