"""The built wheel works on its own: installed into a fresh virtualenv (dependencies borrowed from
this environment, the project's editable install hidden), the demo's app code runs from a folder
outside the checkout and finds the label maps shipped as package data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from detection.ava.labelmap import read_labelmap
from detection.ava.packaged import ALL_CLASSES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# What setuptools reads to build the wheel (README.md is the long description).
BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "README.md")

# Run inside the fresh virtualenv: the demo, then where the package and its label map came from.
DEMO_SCRIPT = """
import json, sys
import detection
from detection.apps.demo import main
from detection.ava.packaged import packaged_labelmap_path
code = main(sys.argv[1:])
print(json.dumps({"code": code, "package": detection.__file__,
                  "labelmap": str(packaged_labelmap_path())}))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _checked(completed: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert completed.returncode == 0, (
        f"{' '.join(completed.args)} exited with {completed.returncode}:\n"
        f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
    )
    return completed


def _build_wheel(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """`pip wheel . --no-deps` on a copy of the package and its build files, so that the build
    leaves no build/ or egg-info behind in the checkout. No build isolation: the build backend
    (setuptools) comes from this environment, so no index is needed. Returns (the wheel, the
    copy it was built from)."""
    source = tmp_path / "source"
    shutil.copytree(
        PROJECT_ROOT / "detection",
        source / "detection",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in BUILD_INPUTS:
        shutil.copy2(PROJECT_ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    _checked(
        _run(
            [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
            + ["--wheel-dir", str(wheels), "--quiet"],
            source,
            env,
        )
    )
    (wheel,) = wheels.glob("*.whl")
    return wheel, source


def _fresh_venv(tmp_path: Path, env: dict[str, str]) -> Path:
    """A virtualenv whose site-packages lists this environment's site-packages in a .pth file.
    Paths added that way are not scanned for .pth files, so this environment's editable finder
    for `detection` is not installed there. Returns its python."""
    venv = tmp_path / "venv"
    _checked(_run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env))
    python = venv / "bin" / "python"
    purelib = _checked(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            tmp_path,
            env,
        )
    ).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    Path(purelib, "borrowed_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_the_demo_outside_the_checkout(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONNOUSERSITE"] = "1"
    outside = tmp_path / "cwd"
    outside.mkdir()

    wheel, source = _build_wheel(tmp_path, env)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    labelmaps = sorted(p.name for p in (source / "detection/ava/labelmaps").glob("*.pbtxt"))
    assert ALL_CLASSES in labelmaps
    assert sorted(n for n in names if n.endswith(".pbtxt")) == [
        f"detection/ava/labelmaps/{name}" for name in labelmaps
    ]
    modules = sorted(p.relative_to(source).as_posix() for p in (source / "detection").rglob("*.py"))
    assert [m for m in modules if m not in names] == [], "modules missing from the wheel"

    python = _fresh_venv(tmp_path, env)
    hidden = _run([str(python), "-c", "import detection"], outside, env)
    assert hidden.returncode != 0 and "No module named 'detection'" in hidden.stderr, (
        f"the fresh virtualenv already sees a `detection` package: {hidden.stdout}{hidden.stderr}"
    )
    _checked(
        _run(
            [sys.executable, "-m", "pip", "--python", str(python), "install"]
            + ["--no-deps", "--no-index", "--quiet", str(wheel)],
            outside,
            env,
        )
    )

    out = tmp_path / "out"
    demo = _checked(
        _run(
            [str(python), "-c", DEMO_SCRIPT]
            + ["--config", str(PROJECT_ROOT / "configs/test/SLOWFAST_TINY.yaml")]
            + ["--input", str(PROJECT_ROOT / "data/demo/vtest_walking_6s.mp4")]
            + ["--output", str(out / "demo.mp4"), "--detector", "hog", "--end", "1", "--quiet"],
            outside,
            env,
        )
    )
    report = json.loads(demo.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    venv = python.parents[1]
    assert Path(report["package"]).is_relative_to(venv), report["package"]
    assert Path(report["labelmap"]).is_relative_to(venv), report["labelmap"]

    assert (out / "demo.mp4").stat().st_size > 0
    assert (out / "demo.csv").read_text().count("\n") > 0
    # Action names come from the packaged 80-class label map.
    names_by_id = read_labelmap(PROJECT_ROOT / "detection/ava/labelmaps" / ALL_CLASSES).names
    keyframes = json.loads((out / "demo.json").read_text())["keyframes"]
    actions = [a for k in keyframes for p in k["persons"] for a in p["actions"]]
    assert actions, "the demo wrote no actions"
    assert all(names_by_id[a["id"]] == a["name"] for a in actions)
