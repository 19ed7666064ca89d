#!/usr/bin/env bash
# Install Detectron2's Python files into a virtual environment from PyPI alone.
#
# Usage: bash tools/install_detectron2.sh [PYTHON]     (default: .venv/bin/python)
#
# Detectron2 has no official PyPI release. The wheel sal-detectron2==0.7.2 (tag cp310-none-any)
# holds the official detectron2 Python files (commit a59f056) plus a compiled _C for CPython
# 3.10 only. Those Python files run on 3.11 without _C for everything the person detector uses;
# what needs _C (deformable conv, rotated boxes, the C++ COCO evaluator) is unavailable.
# The wheel is fetched with pip's cross-platform options, checked against its sha256, unpacked
# into <venv>/opt/sal-detectron2-0.7.2 and made importable with a .pth file in site-packages.
# Its pure-Python dependencies come from the project's `detectron2` extra:
#     pip install -e '.[detectron2]'       (make detectron2 does both steps)
#
# An existing detectron2 (for example one built from the official source) is left alone.
set -euo pipefail

PY=${1:-.venv/bin/python}
VERSION=0.7.2
SHA256=491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561

prefix=$("$PY" -c 'import sys; print(sys.prefix)')
site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
target="$prefix/opt/sal-detectron2-$VERSION"
pth="$site/sal-detectron2.pth"

if [ -f "$target/.sha256" ] && [ "$(cat "$target/.sha256")" = "$SHA256" ] && [ -f "$pth" ]; then
    echo "detectron2 (sal-detectron2 $VERSION) already installed in $target"
    exit 0
fi
if existing=$("$PY" -c 'import detectron2, os; print(os.path.dirname(detectron2.__file__))' 2>/dev/null); then
    echo "detectron2 is already importable from $existing; leaving it as it is"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
    --implementation cp --dest "$tmp" "sal-detectron2==$VERSION"
wheel=("$tmp"/sal_detectron2-"$VERSION"-*.whl)
actual=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "${wheel[0]}")
if [ "$actual" != "$SHA256" ]; then
    echo "error: ${wheel[0]} has sha256 $actual, expected $SHA256; not installing it" >&2
    exit 1
fi

# pip refuses a cp310 wheel for 3.11 without these options; they only select the wheel file.
rm -rf "$target"
"$PY" -m pip install --quiet --no-deps --no-compile --only-binary=:all: --python-version 3.10 \
    --implementation cp --target "$target" "${wheel[0]}"
# Its metadata (numpy<2, black, a cp310 tag) would make `pip check` fail though nothing here
# needs those; this script, not pip, owns these files.
rm -rf "$target"/sal_detectron2-*.dist-info
# The wheel also ships detectron2's scripts as a top-level package `tools`, which would shadow
# this project's tools/ for `import tools`; the detector does not use them.
rm -rf "$target/tools"
echo "$SHA256" > "$target/.sha256"
echo "$target" > "$pth"
"$PY" -c 'import detectron2; print("installed detectron2", detectron2.__version__, "from", detectron2.__file__)'
