# emolib: `make` lists the targets. Every target runs inside the project's .venv.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick

.PHONY: help setup test test-fast lab bench clean reproduce report index FORCE

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

# ---- reports ------------------------------------------------------------------------------------
# One file target per notebook: reports/html/<nb>.html. Its prerequisites are the notebook, its
# profile section (reports/.params/<nb>.yaml, rewritten only when the section or PROFILE changed:
# switching profiles reruns everything, editing one section reruns that notebook), the emolib
# sources, and for 05 the reports of 02-04. The runner stages outputs, so a failure keeps the old report.
NOTEBOOKS := 01_data_exploration 02_cnn_baseline 03_transfer_learning 04_vit_finetune 05_error_analysis 06_webcam_demo
REPORTS := $(or $(shell test -x $(PY) && $(PY) -c 'from emolib import paths; print(paths.reports_dir())' 2>/dev/null),reports)
EMOLIB_SRC := $(shell find emolib -name '*.py' -not -path '*/__pycache__/*')
NB ?=

reproduce: $(REPORTS)/index.html ## run every notebook for PROFILE (default quick) -> reports/index.html; reruns only what changed

report: ## rerun one notebook now, e.g. `make report NB=03` (PROFILE=quick), then the index
	@test -n "$(NB)" || { echo "usage: make report NB=03 [PROFILE=quick]"; exit 2; }
	$(PY) -m emolib.reproduce run $(NB) --profile $(PROFILE)
	$(PY) -m emolib.reproduce index

index: ## rebuild reports/index.html from the reports present
	$(PY) -m emolib.reproduce index

$(REPORTS)/index.html: $(NOTEBOOKS:%=$(REPORTS)/html/%.html) emolib/reporting.py
	$(PY) -m emolib.reproduce index

$(REPORTS)/html/%.html: notebooks/%.ipynb $(REPORTS)/.params/%.yaml $(EMOLIB_SRC)
	$(PY) -m emolib.reproduce run $* --profile $(PROFILE)

$(REPORTS)/html/05_error_analysis.html: $(patsubst %,$(REPORTS)/html/%.html,02_cnn_baseline 03_transfer_learning 04_vit_finetune)

# Always checked, rewritten only when the content changed (make compares mtimes after the recipe).
$(REPORTS)/.params/%.yaml: FORCE
	@$(PY) -m emolib.reproduce params $* --profile $(PROFILE) --out $@

.PRECIOUS: $(REPORTS)/.params/%.yaml
FORCE:

lab: ## JupyterLab on notebooks/ with the `emolib` kernel
	$(VENV)/bin/jupyter lab notebooks/

bench: ## speed and memory figures -> reports/bench/bench.json
	$(PY) -m emolib.bench

clean: ## remove generated reports and derived caches (data/raw and assets stay)
	rm -rf reports/html reports/figures reports/metrics reports/index.html reports/bench reports/.params reports/.staging
	find data/cache -maxdepth 1 -name '*.npz' -delete 2>/dev/null || true
