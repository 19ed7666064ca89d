# Two entry points a fresh machine needs: `make demo` and `make test`.
# While working: `make test-fast` (the suite without the slow end-to-end tests), `make lint`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := detection tools tests benchmarks

.PHONY: demo test test-fast lint clean-venv detectron2

# Detectron2 (optional person detector) is installed too: about 20 s, so CI tests it for real.
$(STAMP): setup.cfg pyproject.toml tools/install_detectron2.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,detectron2]'
	bash tools/install_detectron2.sh $(PY)
	touch $(STAMP)

# The detectron2 extra alone (its pure-Python dependencies, then its files from PyPI).
detectron2:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[detectron2]'
	bash tools/install_detectron2.sh $(PY)

demo: $(STAMP)
	$(PY) tools/demo_net.py

# Lint first: a formatting or type error fails in seconds, before the suite's minutes.
# The exported-runtime tests run in a pytest process of their own: after the rest of the suite
# in one process, that module's OpenVINO/ONNX Runtime work once ended the process with a
# segmentation fault, which no order of the module alone or beside the export tests reproduced.
ISOLATED_TESTS := tests/test_runtime_selection.py

test: lint
	$(PY) -m pytest tests --ignore=$(ISOLATED_TESTS)
	$(PY) -m pytest $(ISOLATED_TESTS)

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" --ignore=$(ISOLATED_TESTS)
	$(PY) -m pytest $(ISOLATED_TESTS) -m "not slow"

# ruff's settings (line length 100) and mypy's (it checks detection/) are in pyproject.toml.
lint: $(STAMP)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m mypy

clean-venv:
	rm -rf $(VENV)
