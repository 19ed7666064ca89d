# Two entry points a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv detectron2

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

test: $(STAMP)
	$(PY) -m ruff check detection tools tests benchmarks
	$(PY) -m pytest tests

lint: $(STAMP)
	$(PY) -m ruff check detection tools tests benchmarks

clean-venv:
	rm -rf $(VENV)
