"""Run ActivityNet's AVA evaluator (``Evaluation/get_ava_performance.py``) unchanged under
today's numpy, which removed the aliases its code uses (``np.float``, ``np.int``, ...).

The aliases are restored from outside its files, then the script runs as ``__main__`` with its
own folder and its ``ava`` folder first on ``sys.path`` (its modules import each other from
there). Nothing of its code
is copied or edited.

    python benchmarks/official_ava_runner.py PATH/TO/get_ava_performance.py -l LABELMAP \
        -g GROUNDTRUTH.csv -d DETECTIONS.csv

It prints the metrics as a pprint'ed dict; `official_per_class` reads the per-class AP back
(benchmarks/eval_speed.py and tests/test_frame_map.py import this module for it).
"""

from __future__ import annotations

import os
import re
import runpy
import sys
import warnings
from pathlib import Path

import numpy

DEFAULT_OFFICIAL = Path(
    os.environ.get(
        "AVA_OFFICIAL_EVALUATOR", "/work/refs/ActivityNet/Evaluation/get_ava_performance.py"
    )
)
"""Where the official evaluator is looked for: $AVA_OFFICIAL_EVALUATOR, else a checkout of
activitynet/ActivityNet under /work/refs."""

_PER_CLASS_AP = re.compile(
    r"""(['"])PascalBoxes_PerformanceByCategory/AP@0\.5IOU/(.*?)\1:\s*"""
    r"""(?:np\.float64\()?([-+0-9.eE]+|nan)"""
)

# The builtins numpy's removed aliases stood for (numpy 1.20 deprecated them, 1.24 removed them).
REMOVED_ALIASES = {
    "float": float,
    "int": int,
    "bool": bool,
    "object": object,
    "str": str,
    "complex": complex,
    "long": int,
    "unicode": str,
}


def official_per_class(stdout: str) -> dict[str, float]:
    """Per-class AP from the official evaluator's printed metrics: its floats are printed as
    reprs, so they read back exactly. Classes without ground truth (NaN) are left out."""
    found = {m.group(2): float(m.group(3)) for m in _PER_CLASS_AP.finditer(stdout)}
    if not found:
        raise ValueError(f"no per-class AP in the official evaluator's output: {stdout[-500:]!r}")
    return {name: ap for name, ap in found.items() if ap == ap}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    with warnings.catch_warnings():
        # numpy warns that some of these names will come back as its scalar types.
        warnings.simplefilter("ignore", FutureWarning)
        for name, value in REMOVED_ALIASES.items():
            if not hasattr(numpy, name):
                setattr(numpy, name, value)
    script = Path(sys.argv[1]).resolve()
    # Its ava/ modules import each other as top-level modules (Python 2 style), so that folder
    # goes on the path too.
    sys.path[:0] = [str(script.parent), str(script.parent / "ava")]
    sys.argv = [str(script), *sys.argv[2:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
