import os
import stat

import pytest

from detection.utils.atomic import atomic_write


def test_replaces_the_file_only_when_the_write_completes(tmp_path):
    path = tmp_path / "out" / "result.txt"
    with atomic_write(path) as f:
        f.write("first")
    assert path.read_text() == "first"

    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(path) as f:
            f.write("half of the sec")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["result.txt"], "no temporary file left"


def test_binary_mode_with_fsync(tmp_path):
    path = tmp_path / "blob.bin"
    with atomic_write(path, "wb", fsync=True) as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_only_write_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_mode_the_umask_gives(tmp_path, umask, expected):
    previous = os.umask(umask)
    try:
        with atomic_write(tmp_path / "new.txt") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == expected


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path) as f:
        f.write("new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
