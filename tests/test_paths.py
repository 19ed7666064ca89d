"""Output guards on real files: same path spelled differently, symlinks, hard links, collisions,
directories and read-only folders."""

from __future__ import annotations

import os

import pytest

from detection.utils.paths import OutputPathError, check_outputs, check_writable_dir, same_file


def test_output_equal_to_input_is_refused_whatever_the_spelling(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"video")
    spelled = tmp_path / "sub" / ".." / "clip.mp4"
    (tmp_path / "sub").mkdir()
    with pytest.raises(OutputPathError, match=r"--output .* is the input --input"):
        check_outputs({"--input": video}, {"--output": spelled})
    assert video.read_bytes() == b"video"


def test_hard_link_and_symlink_to_an_input_are_refused(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"video")
    hard = tmp_path / "hard.mp4"
    os.link(video, hard)
    soft = tmp_path / "soft.mp4"
    soft.symlink_to(video)
    for output in (hard, soft):
        with pytest.raises(OutputPathError, match="is the input"):
            check_outputs({"--input": video}, {"--output": output})


def test_colliding_outputs_are_refused_and_distinct_ones_pass(tmp_path):
    with pytest.raises(OutputPathError, match="--csv .* and --output .* are the same file"):
        check_outputs({}, {"--output": tmp_path / "x.csv", "--csv": tmp_path / "x.csv"})
    check_outputs(
        {"--input": tmp_path / "in.mp4"},
        {"--output": tmp_path / "out.mp4", "--csv": tmp_path / "new" / "out.csv", "--json": None},
    )
    assert not (tmp_path / "new").exists()  # checked, not created
    assert [p.name for p in tmp_path.iterdir()] == []  # the write probe left nothing


def test_directory_output_and_file_as_folder_are_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputPathError, match="is a directory"):
        check_outputs({}, {"--output": tmp_path / "d"})
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_outputs({}, {"--output": tmp_path / "f" / "out.mp4"})


def test_unwritable_folder_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("")
        except PermissionError:
            with pytest.raises(OutputPathError, match="cannot write in .*locked"):
                check_writable_dir(locked / "new" / "deeper", "OUTPUT_DIR")
        else:
            probe.unlink()  # root ignores permission bits: writing there is then possible
            check_writable_dir(locked / "new", "OUTPUT_DIR")
    finally:
        locked.chmod(0o700)


def test_same_file_of_nonexistent_paths_compares_resolved_names(tmp_path):
    assert same_file(tmp_path / "a" / ".." / "x", tmp_path / "x")
    assert not same_file(tmp_path / "x", tmp_path / "y")
