# emolib: `make` lists the targets. Every target runs inside the project's .venv.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick

.PHONY: help setup test test-fast lab bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

setup: ## fresh machine: .venv, emolib (editable, dev extra), Jupyter kernel `emolib`, offline assets
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# opencv-python and grad-cam's opencv-python-headless share the cv2 folder: the GUI build goes last.
	$(PY) -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
	  "opencv-python==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opencv-python"))')"
	$(PY) -m ipykernel install --sys-prefix --name emolib --display-name "Python (emolib)" >/dev/null
	$(PY) -m emolib.assets

test: ## every test, the slow end-to-end ones included (what CI runs)
	$(PY) -m pytest

test-fast: ## the fast tests only
	$(PY) -m pytest -m "not slow"

lab: ## JupyterLab on notebooks/ with the `emolib` kernel
	$(VENV)/bin/jupyter lab notebooks/

bench: ## speed and memory figures -> reports/bench/bench.json
	$(PY) -m emolib.bench

clean: ## remove generated reports and derived caches (data/raw and assets stay)
	rm -rf reports/html reports/figures reports/metrics reports/index.html reports/bench
	find data/cache -maxdepth 1 -name '*.npz' -delete 2>/dev/null || true
