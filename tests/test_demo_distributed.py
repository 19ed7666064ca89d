"""The demo over a folder of videos under torchrun: two gloo processes on CPU take whole videos
(every second one of the sorted list each), rank 0 prints the summary of all of them, a rerun
skips complete outputs, and a rank that fails leaves only complete sets behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from test_demo import _write_plain_video

TINY = "configs/test/SLOWFAST_TINY.yaml"
SUFFIXES = (".mp4", ".csv", ".json", "_segments.csv", "_segments.json", "_timeline.png")


def _torchrun_demo(project_root, folder, out) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            *("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"),
            str(project_root / "tools/demo_net.py"),
            *("--config", str(project_root / TINY), "--input", str(folder)),
            *("--output", str(out), "--quiet"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root,
        timeout=600,
    )


def _sets(out, stems) -> dict[str, str]:
    """Per video stem: "complete", "absent" or the files it has (a partial set)."""
    state = {}
    for stem in stems:
        present = [s for s in SUFFIXES if (out / f"{stem}_actions{s}").is_file()]
        state[stem] = {6: "complete", 0: "absent"}.get(len(present), ",".join(present))
    return state


def _table_rows(stdout: str) -> list[str]:
    return re.findall(r"^\| (\S+\.mkv) \|", stdout, flags=re.M)


@pytest.mark.slow
def test_torchrun_ranks_take_whole_videos_and_rank0_sums_up(tmp_path, project_root):
    folder, out = tmp_path / "videos", tmp_path / "out"
    folder.mkdir()
    for name, seconds in (("a", 1), ("b", 2), ("c", 1)):
        _write_plain_video(folder / f"{name}.mkv", 64, 48, seconds=seconds)

    proc = _torchrun_demo(project_root, folder, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Every video once, in the one table rank 0 prints (rank 0 ran a and c, rank 1 ran b).
    assert sorted(_table_rows(proc.stdout)) == ["a.mkv", "b.mkv", "c.mkv"]
    assert proc.stdout.count("| **3 videos** |") == 1
    assert "| b.mkv | 2.0 | 2 | 0 | 20 |" in proc.stdout
    assert _sets(out, "abc") == dict.fromkeys("abc", "complete")
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    # A rerun skips what is complete, on each rank.
    proc = _torchrun_demo(project_root, folder, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "rank 0: skipping 2 of 2 videos" in proc.stdout
    assert "rank 1: skipping 1 of 1 videos" in proc.stdout
    assert "| **0 videos** |" in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes

    # Rank 1's video breaks and b's outputs are gone: rank 1 fails (one line, exit 2) and the
    # launcher stops rank 0; whatever was running, every video's set is complete or absent,
    # and a's and c's finished sets are untouched.
    for path in out.glob("b_actions*"):
        path.unlink()
    (folder / "b.mkv").write_bytes(b"\x1aE\xdf\xa3 not a video")
    proc = _torchrun_demo(project_root, folder, out)
    assert proc.returncode != 0
    assert "error: " in proc.stderr and "b.mkv" in proc.stderr
    assert _sets(out, "abc") == {"a": "complete", "b": "absent", "c": "complete"}
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == {
        k: v for k, v in mtimes.items() if not k.startswith("b_")
    }

    # Fixed, the next run does only b.
    _write_plain_video(folder / "b.mkv", 64, 48, seconds=2)
    proc = _torchrun_demo(project_root, folder, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _table_rows(proc.stdout) == ["b.mkv"]
    assert _sets(out, "abc") == dict.fromkeys("abc", "complete")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
