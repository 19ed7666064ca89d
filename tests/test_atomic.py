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
