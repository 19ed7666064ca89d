# Two entry points a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean-venv

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) tools/demo_net.py

test: $(STAMP)
	$(PY) -m ruff check detection tools tests benchmarks
	$(PY) -m pytest tests

lint: $(STAMP)
	$(PY) -m ruff check detection tools tests benchmarks

clean-venv:
	rm -rf $(VENV)
