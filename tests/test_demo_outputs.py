"""The demo's outputs on real files: refused when they would destroy an input or each other
(before any model loads), bad spans in one line, and one consistent result set (a failed run
leaves the previous set byte-identical; temporaries of killed runs are removed; umask modes)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import av
import pytest

from detection.apps.demo import main as demo_main
from detection.engine.demo import ResultSet

TINY = "configs/test/SLOWFAST_TINY.yaml"
CLIP = "data/demo/vtest_walking_6s.mp4"
OUTPUT_NAMES = (".mp4", ".csv", ".json", "_segments.csv", "_segments.json", "_timeline.png")


def _refused(capsys, argv) -> str:
    """Run the demo app; assert it exits with code 2 and one line on stderr; return the line."""
    with pytest.raises(SystemExit) as exit_info:
        demo_main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def demo_args(tmp_path, project_root):
    """Arguments of a run on a copy of the bundled clip, with MODEL.WEIGHTS naming a file that
    does not exist: a run that got as far as loading the model would fail on that instead, so
    a refusal that names the outputs proves they were checked first."""
    video = tmp_path / "in.mp4"
    shutil.copy(project_root / CLIP, video)
    config = tmp_path / "tiny.yaml"
    config.write_text(f"_BASE_: {project_root / TINY}\n")

    def args(*extra: str) -> list[str]:
        opts = ["MODEL.WEIGHTS", str(tmp_path / "missing.pyth")]
        return ["--config", str(config), "--input", str(video), "--quiet", *extra, *opts]

    return args, video, config


@pytest.mark.parametrize(
    ("option", "target", "expected"),
    [
        ("--output", "video", r"--output .*in\.mp4 is the input --input"),
        ("--csv", "video", r"--csv .*in\.mp4 is the input --input"),
        ("--json", "config", r"--json .*tiny\.yaml is the input --config"),
        ("--segments", "config", r"--segments .*tiny\.yaml is the input --config"),
        ("--timeline", "hardlink", r"--timeline .*link\.mp4 is the input --input"),
        ("--output", "x.csv", r"--csv \(default\) .*x\.csv and --output .*x\.csv are the same"),
        ("--output", "file/o.mp4", r"folder of --output .*: .* is a file, not a folder"),
    ],
)
def test_outputs_that_would_destroy_inputs_or_each_other_are_refused_first(
    tmp_path, capsys, demo_args, option, target, expected
):
    args, video, config = demo_args
    if target == "hardlink":
        path = tmp_path / "link.mp4"
        os.link(video, path)
    elif target == "file/o.mp4":
        (tmp_path / "file").write_text("a file where a folder should be")
        path = tmp_path / "file" / "o.mp4"
    else:
        path = {"video": video, "config": config}.get(target, tmp_path / target)
    video_bytes, config_bytes = video.read_bytes(), config.read_bytes()
    line = _refused(capsys, args(option, str(path)))
    assert re.search(expected, line), line
    assert video.read_bytes() == video_bytes and config.read_bytes() == config_bytes
    assert not (tmp_path / "demo_output").exists() and not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (["--start", "nan"], "argument --start: 'nan' is not a time in seconds"),
        (["--start", "-2"], "argument --start: '-2' is not a time in seconds"),
        (["--end", "inf"], "argument --end: 'inf' is not a time in seconds"),
        (["--start", "3", "--end", "1"], "--end 1 is not after --start 3"),
        (["--start", "2", "--end", "2"], "--end 2 is not after --start 2"),
    ],
)
def test_bad_spans_are_one_line(tmp_path, capsys, demo_args, span, expected):
    args, _, _ = demo_args
    line = _refused(capsys, args(*span, "--output", str(tmp_path / "o.mp4")))
    assert expected in line
    assert not (tmp_path / "o.mp4").exists()


def test_folder_of_videos_with_one_stem_twice_is_refused(tmp_path, capsys, demo_args):
    """a.mp4 and a.mkv would write the same a_actions.* files in folder mode."""
    args, video, _ = demo_args
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(video, folder / "a.mp4")
    shutil.copy(video, folder / "a.mkv")
    argv = args("--output", str(tmp_path / "out"))
    argv[argv.index("--input") + 1] = str(folder)
    line = _refused(capsys, argv)
    assert "a.mkv and" in line and "a.mp4 would both write" in line


def _faststart_copy_corrupted(source, target, at: float) -> None:
    """`source` remuxed with its index first (so the file still opens), then 20 kB of the media
    data from fraction `at` of the file on overwritten: decoding fails part-way."""
    staging = target.with_suffix(".faststart.mp4")
    with (
        av.open(str(source)) as src,
        av.open(str(staging), "w", options={"movflags": "faststart"}) as dst,
    ):
        stream = src.streams.video[0]
        out = dst.add_stream_from_template(stream)
        for packet in src.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    data = bytearray(staging.read_bytes())
    start = int(len(data) * at)
    data[start : start + 20000] = b"\xff" * 20000
    target.write_bytes(bytes(data))


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mode & 0o777) for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_failed_run_leaves_the_previous_result_set_and_modes_follow_umask(
    tmp_path, project_root, capsys
):
    out = tmp_path / "out"
    good = tmp_path / "good.mp4"
    shutil.copy(project_root / CLIP, good)
    corrupt = tmp_path / "corrupt.mp4"
    _faststart_copy_corrupted(good, corrupt, at=0.7)
    base = ["--config", str(project_root / TINY), "--output", str(out / "o.mp4"), "--quiet"]
    old_umask = os.umask(0o022)
    try:
        assert demo_main([*base, "--input", str(good), "--end", "2"]) == 0
        (out / "o.csv").chmod(0o600)  # a replaced file keeps its mode
        first = _snapshot(out)
        assert sorted(first) == sorted(f"o{name}" for name in OUTPUT_NAMES)
        assert {mode for name, (_, mode) in first.items() if name != "o.csv"} == {0o644}

        # Decoding fails part-way, after the video has started being written.
        _refused(capsys, [*base, "--input", str(corrupt)])
        assert _snapshot(out) == first  # the previous set, byte for byte, and nothing else

        assert demo_main([*base, "--input", str(good), "--end", "3"]) == 0
        second = _snapshot(out)
    finally:
        os.umask(old_umask)
    assert sorted(second) == sorted(first)
    assert second["o.mp4"][0] != first["o.mp4"][0] and second["o.csv"][0] != first["o.csv"][0]
    assert second["o.csv"][1] == 0o600
    assert {mode for name, (_, mode) in second.items() if name != "o.csv"} == {0o644}


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_temporaries_of_killed_runs_are_removed_and_live_ones_kept(tmp_path):
    host = socket.gethostname()
    dead, alive = _dead_pid(), os.getpid()
    final_csv, final_mp4 = tmp_path / "o.csv", tmp_path / "o.mp4"
    stale = [
        tmp_path / f".partial+{host}+{dead}+0a1b2c3d+o.csv",
        tmp_path / f"..partial+{host}+{dead}+0a1b2c3d+o.mp4.{dead}.tmp",  # a writer's own temp
        tmp_path / f".partial+otherhost+{alive}+00ff00ff+o.mp4",
    ]
    kept = [
        tmp_path / f".partial+{host}+{alive}+deadbeef+o.csv",  # a run still going
        tmp_path / f".partial+{host}+{dead}+0a1b2c3d+other.csv",  # another output's
        tmp_path / "o.csv.partial",  # not ours
    ]
    for path in stale + kept:
        path.write_text("x")
    result_set = ResultSet([final_csv, final_mp4])
    assert result_set.removed_stale == len(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in kept)

    # This run's own temporaries: committed over the finals, or discarded after a failure.
    result_set.temp(final_csv).write_text("new csv")
    result_set.commit()
    assert final_csv.read_text() == "new csv" and not final_mp4.exists()
    other = ResultSet([final_csv])
    other.temp(final_csv).write_text("never")
    other.discard()
    assert final_csv.read_text() == "new csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [*kept, final_csv])


@pytest.mark.slow
def test_killed_run_leaves_the_previous_set_and_the_next_run_sweeps_its_temporaries(
    tmp_path, project_root
):
    """SIGKILL while the video is being written: the previous set stays; the next run of the
    same outputs removes the killed run's temporaries."""
    out = tmp_path / "out"
    video = tmp_path / "in.mp4"
    shutil.copy(project_root / CLIP, video)
    base = [sys.executable, str(project_root / "tools/demo_net.py"), "--config"]
    base += [str(project_root / TINY), "--input", str(video), "--output", str(out / "o.mp4")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*base, "--end", "1", "--quiet"], check=True, env=env, capture_output=True)
    first = _snapshot(out)
    proc = subprocess.Popen([*base, "--quiet"], env=env, stdout=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not any(p.name.startswith(".") for p in out.iterdir()):
            time.sleep(0.02)  # until the run has a temporary beside the outputs
    finally:
        proc.kill()
        proc.wait()
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers and all("partial+" in name for name in leftovers)
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".")} == first

    subprocess.run([*base, "--end", "1", "--quiet"], check=True, env=env, capture_output=True)
    assert sorted(_snapshot(out)) == sorted(first)  # no temporaries left
