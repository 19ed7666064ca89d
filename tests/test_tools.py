"""Every command-line tool, run as a real subprocess, answers bad input with exactly one line
``error: ...`` naming the offending file (and row) or key, exit code 2 and no traceback, before
doing any work; and every tool's --help says what it reads and writes.

The cases that need torch in the tool's process (model building, the demo) are marked slow.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from detection.apps.cli import run_tool

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "test" / "SLOWFAST_TINY.yaml")
SYNTHETIC = str(ROOT / "configs" / "synthetic" / "SLOWFAST_TINY.yaml")
CLIP = str(ROOT / "data" / "demo" / "vtest_walking_6s.mp4")
TOOLS = [
    "train_net",
    "test_net",
    "eval_ava",
    "compare_results",
    "eval_person_ap",
    "visualize",
    "demo_net",
    "make_synthetic_ava",
    "extract_frames",
    "import_annotations",
    "check_dataset",
    "make_proposals",
    "export_model",
]
# Training and testing on CPU with nothing heavy: errors must come before any work anyway.
CPU = ["DEVICE", "cpu", "DATA_LOADER.NUM_WORKERS", "0"]
TRAIN_LABELMAP = "ava_action_list_v2.2_for_activitynet_2019.pbtxt"  # AVA.LABEL_MAP_FILE

GT = "v1,0902,0.1,0.2,0.5,0.9,1,0\nv1,0902,0.1,0.2,0.5,0.9,2,0\nv1,0903,0.3,0.1,0.6,0.8,1,1\n"
DETECTIONS = "v1,0902,0.1,0.2,0.5,0.9,1,0.9\nv1,0902,0.1,0.2,0.5,0.9,2,0.4\n"
LABELMAP = 'item {\n  name: "stand"\n  id: 1\n}\nitem {\n  name: "sit"\n  id: 2\n}\n'


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Good and bad input files; each bad one has one mistake on a known line."""
    d = tmp_path_factory.mktemp("tool_inputs")
    files = {
        "gt.csv": GT,
        "det.csv": DETECTIONS,
        # Line 2: a non-numeric coordinate.
        "bad_gt.csv": GT.replace("v1,0902,0.1,0.2,0.5,0.9,2,0", "v1,0902,0.1,abc,0.5,0.9,2,0"),
        "bad_det.csv": DETECTIONS.replace("0.5,0.9,2,0.4", "0.5,oops,2,0.4"),
        "bad_excl.csv": "v1,0902\nv1,noon\n",
        "labelmap.pbtxt": LABELMAP,
        # The second entry (line 5) has a non-integer id.
        "bad.pbtxt": LABELMAP.replace("id: 2", "id: two"),
        "good.json": '{"mAP": 0.5, "per_class": {"stand": 0.5}}\n',
        "bad.json": '{"mAP": 0.5,\n "per_class": {"stand": 0.5,}}\n',
        "wrong.json": '{"mAP": 0.5, "per_class": {"stand": "high"}}\n',
        "not_a_video.mp4": "this is text\n",
        "not_a_checkpoint.pyth": "this is text\n",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    # A dataset whose training ground truth has a malformed row (line 3); no videos needed,
    # since the annotations are read before any clip.
    annotations = d / "dataset" / "annotations"
    annotations.mkdir(parents=True)
    (annotations / "ava_train_v2.2.csv").write_text(
        "syn_000,0902,0.1,0.2,0.5,0.9,1,0\nsyn_000,0902,0.1,0.2,0.5,0.9,2,0\n"
        "syn_000,0903,0.1,0.2,0.5,nan?,1,0\n"
    )
    return d


def run(tool: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args],
        cwd=cwd,
        # One intra-op thread each: cases run side by side and none of them computes much.
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_cases(
    cases: dict[str, tuple[str, list[str], str]], tmp: Path, **placeholders: object
) -> dict[str, subprocess.CompletedProcess]:
    """Each case's tool in its own folder under `tmp`, a few at a time (a case is mostly
    Python start-up and imports, so this is what keeps the file fast). `placeholders` fill
    ``{name}`` in the arguments."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        futures = {
            name: pool.submit(run, tool, [a.format(**placeholders) for a in args], tmp / name)
            for name, (tool, args, _) in cases.items()
        }
    return {name: future.result() for name, future in futures.items()}


def assert_one_error_line(result: subprocess.CompletedProcess, pattern: str) -> None:
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


# (tool, arguments, a regex the one line must match); "{d}" in an argument is the `inputs`
# folder, "{synthetic}" the root of the `synthetic_ava` dataset (conftest), "{bad_labelmap}" a
# copy of it with a malformed label map.
FAST_CASES = {
    "train_net-bad-config-key": (
        "train_net",
        ["--config", TINY, "NO.SUCH_KEY", "1"],
        "NO.SUCH_KEY",
    ),
    "train_net-missing-config": ("train_net", ["--config", "missing.yaml"], r"missing\.yaml"),
    "train_net-odd-overrides": ("train_net", ["--config", TINY, "OUTPUT_DIR"], "OUTPUT_DIR"),
    "test_net-bad-config-key": ("test_net", ["--config", TINY, "NO.SUCH_KEY", "1"], "NO.SUCH_KEY"),
    "test_net-missing-config": ("test_net", ["--config", "missing.yaml"], r"missing\.yaml"),
    # argparse hands everything after the first override to the overrides.
    "test_net-option-after-overrides": (
        "test_net",
        ["--config", TINY, "OUTPUT_DIR", "out", "--config", TINY],
        r"option --config comes after the KEY VALUE overrides \(OUTPUT_DIR out",
    ),
    "demo_net-option-after-overrides": (
        "demo_net",
        ["--input", CLIP, "MODEL.WEIGHTS", "w.pkl", "--output", "o.mp4"],
        r"option --output comes after the KEY VALUE overrides \(MODEL.WEIGHTS w\.pkl",
    ),
    "eval_ava-malformed-gt": (
        "eval_ava",
        ["-l", "{d}/labelmap.pbtxt", "-g", "{d}/bad_gt.csv", "-d", "{d}/det.csv"],
        r"bad_gt\.csv:2\b",
    ),
    "eval_ava-malformed-detections": (
        "eval_ava",
        ["-l", "{d}/labelmap.pbtxt", "-g", "{d}/gt.csv", "-d", "{d}/bad_det.csv"],
        r"bad_det\.csv:2\b",
    ),
    "eval_ava-bad-labelmap": (
        "eval_ava",
        ["-l", "{d}/bad.pbtxt", "-g", "{d}/gt.csv", "-d", "{d}/det.csv"],
        r"bad\.pbtxt:5\b",
    ),
    "eval_ava-bad-exclusions": (
        "eval_ava",
        ["-l", "{d}/labelmap.pbtxt", "-g", "{d}/gt.csv", "-d", "{d}/det.csv"]
        + ["-e", "{d}/bad_excl.csv"],
        r"bad_excl\.csv:2\b",
    ),
    "eval_ava-missing-file": (
        "eval_ava",
        ["-l", "{d}/labelmap.pbtxt", "-g", "{d}/gt.csv", "-d", "missing.csv"],
        r"missing\.csv",
    ),
    "compare_results-malformed-json": (
        "compare_results",
        ["{d}/good.json", "{d}/bad.json"],
        r"bad\.json:2\b",
    ),
    "compare_results-wrong-json": (
        "compare_results",
        ["{d}/good.json", "{d}/wrong.json"],
        r"wrong\.json: per_class\['stand'\]",
    ),
    "compare_results-missing-file": (
        "compare_results",
        ["{d}/good.json", "missing.json"],
        r"missing\.json",
    ),
    "compare_results-malformed-detections": (
        "compare_results",
        ["{d}/good.json", "{d}/bad_det.csv", "-l", "{d}/labelmap.pbtxt", "-g", "{d}/gt.csv"],
        r"bad_det\.csv:2\b",
    ),
    "compare_results-bad-labelmap": (
        "compare_results",
        ["{d}/good.json", "{d}/det.csv", "-l", "{d}/bad.pbtxt", "-g", "{d}/gt.csv"],
        r"bad\.pbtxt:5\b",
    ),
    "compare_results-csv-without-labelmap": (
        "compare_results",
        ["{d}/good.json", "{d}/det.csv"],
        r"det\.csv.*-l and -g",
    ),
    "eval_person_ap-malformed-gt": (
        "eval_person_ap",
        ["-g", "{d}/bad_gt.csv", "-d", "{d}/det.csv"],
        r"bad_gt\.csv:2\b",
    ),
    "eval_person_ap-malformed-boxes": (
        "eval_person_ap",
        ["-g", "{d}/gt.csv", "-d", "{d}/bad_det.csv"],
        r"bad_det\.csv:2\b",
    ),
    "eval_person_ap-bad-exclusions": (
        "eval_person_ap",
        ["-g", "{d}/gt.csv", "-d", "{d}/det.csv", "-e", "{d}/bad_excl.csv"],
        r"bad_excl\.csv:2\b",
    ),
    "eval_person_ap-missing-file": (
        "eval_person_ap",
        ["-g", "missing.csv", "-d", "{d}/det.csv"],
        r"missing\.csv",
    ),
    "visualize-malformed-csv": (
        "visualize",
        ["--video", CLIP, "--out", "o.png", "--gt", "{d}/bad_gt.csv", "--video-id", "v1"],
        r"bad_gt\.csv:2\b",
    ),
    "visualize-bad-labelmap": (
        "visualize",
        ["--video", CLIP, "--out", "o.png", "--gt", "{d}/gt.csv", "--labelmap", "{d}/bad.pbtxt"],
        r"bad\.pbtxt:5\b",
    ),
    "visualize-missing-video": (
        "visualize",
        ["--video", "missing.mp4", "--out", "o.png", "--gt", "{d}/gt.csv"],
        r"missing\.mp4",
    ),
    "visualize-not-a-video": (
        "visualize",
        ["--video", "{d}/not_a_video.mp4", "--out", "o.png", "--gt", "{d}/gt.csv"]
        + ["--video-id", "v1"],
        r"not_a_video\.mp4",
    ),
    "visualize-unknown-video-id": (
        "visualize",
        ["--video", CLIP, "--out", "o.png", "--gt", "{d}/gt.csv"],
        r"gt\.csv: no rows for video 'vtest_walking_6s' .*v1",
    ),
    "visualize-keyframes-outside-the-video": (
        "visualize",
        ["--video", CLIP, "--out", "o.png", "--gt", "{d}/gt.csv", "--video-id", "v1"]
        + ["--video-start-sec", "0"],
        r"vtest_walking_6s\.mp4 lasts",
    ),
    "visualize-bad-output-type": (
        "visualize",
        ["--video", CLIP, "--out", "o.gif", "--gt", "{d}/gt.csv", "--video-id", "v1"],
        r"o\.gif",
    ),
    "visualize-no-csv": ("visualize", ["--video", CLIP, "--out", "o.png"], "--gt, --pred"),
    "make_synthetic_ava-output-is-a-file": (
        "make_synthetic_ava",
        ["--output", "{d}/gt.csv", "--num-videos", "2", "--seconds", "4"],
        r"gt\.csv",
    ),
    "make_synthetic_ava-no-val-split": (
        "make_synthetic_ava",
        ["--output", "out", "--num-videos", "2", "--num-val", "2"],
        "--num-val",
    ),
    "make_synthetic_ava-too-short": (
        "make_synthetic_ava",
        ["--output", "out", "--seconds", "2"],
        "--seconds",
    ),
}

SLOW_CASES = {
    "train_net-malformed-csv": (
        "train_net",
        ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "{d}/dataset", "OUTPUT_DIR", "out", *CPU],
        r"ava_train_v2\.2\.csv:3\b",
    ),
    "train_net-missing-data": (
        "train_net",
        ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "nodata", "OUTPUT_DIR", "out", *CPU],
        r"nodata/annotations/ava_train_v2\.2\.csv",
    ),
    "train_net-bad-labelmap": (
        "train_net",
        ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "{bad_labelmap}", "OUTPUT_DIR", "out"]
        + ["TRAIN.BATCH_SIZE", "1", *CPU],
        rf"{re.escape(TRAIN_LABELMAP)}:5\b",
    ),
    "train_net-batch-larger-than-the-dataset": (
        "train_net",
        ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "{synthetic}", "OUTPUT_DIR", "out"]
        + ["TRAIN.BATCH_SIZE", "64", *CPU],
        "TRAIN.BATCH_SIZE",
    ),
    "test_net-not-a-checkpoint": (
        "test_net",
        ["--config", SYNTHETIC, "DATA.PATH_TO_DATA_DIR", "{synthetic}", "OUTPUT_DIR", "out"]
        + ["TEST.CHECKPOINT_FILE_PATH", "{d}/not_a_checkpoint.pyth", *CPU],
        r"not_a_checkpoint\.pyth",
    ),
    "test_net-no-checkpoint-in-output-dir": (
        "test_net",
        ["--config", SYNTHETIC, "OUTPUT_DIR", "empty", *CPU],
        r"empty/checkpoints",
    ),
    "demo_net-bad-config-key": ("demo_net", ["--config", TINY, "NO.SUCH_KEY", "1"], "NO.SUCH_KEY"),
    "demo_net-missing-video": (
        "demo_net",
        ["--config", TINY, "--input", "missing.mp4", "--quiet"],
        r"missing\.mp4",
    ),
    "demo_net-not-a-video": (
        "demo_net",
        ["--config", TINY, "--input", "{d}/not_a_video.mp4", "--quiet"],
        r"not_a_video\.mp4",
    ),
    "demo_net-bad-labelmap": (
        "demo_net",
        ["--config", TINY, "--input", CLIP, "--quiet", "DEMO.LABEL_FILE_PATH", "{d}/bad.pbtxt"],
        r"bad\.pbtxt:5\b",
    ),
    "demo_net-malformed-boxes": (
        "demo_net",
        ["--config", TINY, "--input", CLIP, "--quiet", "--detector", "csv"]
        + ["DEMO.PREDICTED_BOXES_CSV", "{d}/bad_det.csv"],
        r"bad_det\.csv:2\b",
    ),
}


@pytest.fixture(scope="module")
def fast_results(inputs, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    return run_cases(FAST_CASES, tmp_path_factory.mktemp("fast_cases"), d=inputs)


@pytest.fixture(scope="module")
def slow_results(inputs, synthetic_ava, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("slow_cases")
    # The generated dataset with a malformed training label map (its videos linked).
    bad_labelmap = tmp / "bad_labelmap_dataset"
    shutil.copytree(synthetic_ava.root / "annotations", bad_labelmap / "annotations")
    (bad_labelmap / "videos").symlink_to(synthetic_ava.root / "videos")
    shutil.copy(inputs / "bad.pbtxt", bad_labelmap / "annotations" / TRAIN_LABELMAP)
    return run_cases(
        SLOW_CASES, tmp, d=inputs, synthetic=synthetic_ava.root, bad_labelmap=bad_labelmap
    )


@pytest.fixture(scope="module")
def help_results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    cases = {tool: (tool, ["--help"], "") for tool in TOOLS}
    return run_cases(cases, tmp_path_factory.mktemp("help"))


@pytest.mark.parametrize("name", FAST_CASES)
def test_bad_input_is_one_error_line_and_exit_code_2(name, fast_results):
    assert_one_error_line(fast_results[name], FAST_CASES[name][2])


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_CASES)
def test_bad_input_to_torch_tools_is_one_error_line_and_exit_code_2(name, slow_results):
    assert_one_error_line(slow_results[name], SLOW_CASES[name][2])


def test_every_tool_is_covered():
    shipped = {path.stem for path in (ROOT / "tools").glob("*.py")}
    assert shipped <= set(TOOLS), "add the new tool to TOOLS"


@pytest.mark.parametrize("tool", TOOLS)
def test_help_says_what_the_tool_reads_and_writes(tool, help_results):
    result = help_results[tool]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert "Reads" in result.stdout and "Writes" in result.stdout, result.stdout


def _raise(error: BaseException) -> None:
    raise error


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError):
        run_tool(lambda: _raise(KeyError("missing")))
    # An I/O error of the disk is not a mistake in the user's paths.
    with pytest.raises(OSError, match="Input/output error"):
        run_tool(lambda: _raise(OSError(errno.EIO, "Input/output error")))


@pytest.mark.slow
def test_a_user_error_in_a_dataloader_worker_is_its_own_one_line(inputs, capsys):
    """torch re-raises a worker's exception with the worker's traceback as its message; the
    line printed is the original message."""
    import torch.utils.data

    from detection.ava.csv_io import read_ava_csv

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 1

        def __getitem__(self, index: int) -> int:
            read_ava_csv(inputs / "bad_gt.csv", kind="groundtruth")
            return index

    loader = torch.utils.data.DataLoader(Rows(), num_workers=1)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(lambda: next(iter(loader)))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(r"error: \S*bad_gt\.csv:2: y1 'abc' is not a number", lines[0]), lines
