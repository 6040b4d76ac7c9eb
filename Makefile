# emolib: `make` lists the targets. Every target runs inside the project's .venv.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# The exact versions `make setup` installs (and environment.yml); `make lock` rewrites it from pyproject.toml.
LOCK := requirements.lock
PIP := $(PY) -m pip --disable-pip-version-check
# One id per make call: the notebooks one `make reproduce` runs share it (one row of the index's history).
ifndef EMOLIB_BATCH
EMOLIB_BATCH := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
endif
export EMOLIB_BATCH

.PHONY: help setup lock git-filter test test-fast lab tensorboard bench bench-peers clean reproduce report index dry-run FORCE

help: ## list the targets
	@# Colour only on a terminal: `make | less` and CI logs get plain text (NO_COLOR=1 turns it off too).
	@if [ -t 1 ] && [ -z "$$NO_COLOR" ]; then on=$$'\033[36m'; off=$$'\033[0m'; else on=; off=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk -F ':.*## ' -v on="$$on" -v off="$$off" '{printf "  %s%-12s%s %s\n", on, $$1, off, $$2}'

setup: ## fresh machine: .venv with the locked versions (requirements.lock), emolib editable, kernel `emolib`, git filter, offline assets and the default model's ONNX export
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$$(grep -m1 '^uv==' $(LOCK) | cut -d' ' -f1)"
	$(UV_INSTALL) -r $(LOCK)
	$(UV_INSTALL) --no-deps -e .
	@# opencv-python and grad-cam's opencv-python-headless share the cv2 folder: the GUI build goes last.
	$(UV_INSTALL) --reinstall --no-deps \
	  "opencv-python==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opencv-python"))')"
	$(PY) -m ipykernel install --sys-prefix --name emolib --display-name "Python (emolib)" >/dev/null
	@$(MAKE) --no-print-directory git-filter
	$(PY) -m emolib assets

# uv installs the lock (pinned in it too) several times faster than pip: wheels unpacked in parallel. Bytecode is
# compiled at install: where PYTHONDONTWRITEBYTECODE is set (CI machines, containers) Python never caches what it
# compiles, and every process (each notebook's kernel, each test's subprocess) compiled torch's sources again
# (docs/reproduce.md, "Where the minutes go"). uv ignores pip's configuration, so the indexes and wheel folders pip
# is configured with (pip.conf, PIP_* variables) are passed on, and every index is searched for the pinned version,
# as pip does.
UV_SOURCES = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -nE "s/^[^.]*\.(index-url|extra-index-url|find-links)='(.*)'$$/\1 \2/p" | \
  awk '{ for (i = 2; i <= NF; i++) if (!seen[$$1 " " $$i]++) printf " --%s %s", $$1, $$i }')
UV_INSTALL = $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) --index-strategy unsafe-best-match \
  $(UV_SOURCES)

# The versions installed in .venv (what the tests ran with) are constraints, so a new dependency is locked
# at the version that was tested; UPGRADE=1 drops them and takes the newest versions pyproject.toml allows.
lock: ## re-resolve requirements.lock from pyproject.toml at the versions in .venv (UPGRADE=1: newest); then `make setup`
	@$(PIP) freeze --exclude-editable | grep '==' > $(VENV)/tested-versions.txt
	@CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile --quiet --extra dev --extra tensorboard --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links --no-emit-trusted-host --annotation-style line \
	  $(if $(UPGRADE),--upgrade,--constraint $(VENV)/tested-versions.txt) \
	  --output-file $(LOCK) pyproject.toml 2> >(grep -v -e BuildBackendWarning -e '^ *$$' -e '^!!' -e '\*\*\*' \
	    -e 'license' -e 'License' -e 'finalize' >&2)
	@echo "$(LOCK): $$(grep -c '^[A-Za-z0-9].*==' $(LOCK)) packages pinned"

git-filter: ## notebooks enter git without outputs: nbstripout as this checkout's git filter (`make setup` runs it)
	@# Also without the kernel's language_info, which JupyterLab writes on every save (papermill reads the kernelspec).
	@# Then the index is refreshed once: a fresh clone's notebooks are as new as its index, so until then every
	@# `git status` runs the filter on each of them, and the status check behind each report's code version
	@# (emolib.core.provenance) would run out of time in every notebook of a first `make reproduce`.
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  nbs='"$(abspath $(PY))" -m nbstripout --keep-id --extra-keys metadata.language_info'; \
	  git config filter.nbstripout.clean "$$nbs" && git config filter.nbstripout.smudge cat && \
	  git config filter.nbstripout.required true && git config diff.ipynb.textconv "$$nbs -t" && \
	  { git update-index -q --refresh >/dev/null || true; } && \
	  echo "git filter nbstripout: on (.gitattributes applies it to *.ipynb)"; \
	else echo "git-filter: not a git checkout, nothing to do"; fi

# The tests run on every core (pytest-xdist; worksteal: an idle worker takes tests a busy one has not started).
# TEST_JOBS=0 runs them in this process (a debugger, -x); tests/conftest.py gives each worker its share of the cores.
TEST_JOBS ?= auto
test: ## every test, the slow end-to-end ones included (what CI runs; TEST_JOBS=0: in one process)
	$(PY) -m pytest -n $(TEST_JOBS) --dist worksteal

test-fast: ## the fast tests only
	$(PY) -m pytest -m "not slow"

# ---- reports ------------------------------------------------------------------------------------
# One file target per notebook: reports/html/<nb>.html. Its prerequisites are the notebook, its
# profile section (reports/.params/<nb>.yaml, rewritten only when the section or PROFILE changed:
# switching profiles reruns everything, editing one section reruns that notebook), the emolib
# sources, and for 05 the reports of 02-04. The runner stages outputs, so a failure keeps the old report.
# Which notebooks there are, which train and which read their checkpoints: emolib.research.notebooks' table.
notebooks = $(shell test -x $(PY) && $(PY) -m emolib.research.notebooks $(1) 2>/dev/null)
NOTEBOOKS := $(call notebooks,all)
REPORTS := $(or $(shell test -x $(PY) && $(PY) -c 'from emolib.core import paths; print(paths.reports_dir())' 2>/dev/null),reports)
# The code a report depends on: the package less the command line and the benchmarks (emolib.research.records
# hashes the same files for the index's stale marks).
EMOLIB_SRC := $(shell find emolib -name '*.py' -not -path '*/__pycache__/*' -not -path 'emolib/cli/*' -not -path 'emolib/bench/*')
NB ?=

# Notebooks run side by side, JOBS at a time, each kernel on its share of the cores (NB_THREADS torch threads). Default
# (`runner jobs`): one per core, at most as many as can run at once, one where the profile trains on a GPU; it costs
# less CPU than one after another on every core (docs/reproduce.md, "Where the minutes go"). JOBS=1: one at a time.
JOBS ?= $(shell $(PY) -m emolib.research.runner jobs --profile $(PROFILE))
NB_THREADS = $(shell n=$$(nproc); echo $$(( n / $(JOBS) > 1 ? n / $(JOBS) : 1 )))

reproduce: ## run every notebook for PROFILE (default quick) -> reports/index.html, JOBS side by side; reruns only what changed
	@jobs=$(JOBS) && test -n "$$jobs" && $(MAKE) --no-print-directory -j$$jobs JOBS=$$jobs $(REPORTS)/index.html

report: ## rerun one notebook now, e.g. `make report NB=03` (PROFILE=quick), then the index
	@test -n "$(NB)" || { echo "usage: make report NB=03 [PROFILE=quick]"; exit 2; }
	$(PY) -m emolib.research.runner run $(NB) --profile $(PROFILE)
	$(PY) -m emolib.research.runner index

dry-run: ## every notebook of PROFILE, training/evaluation capped to a few batches (CPU, minutes) -> reports/dry-run/PROFILE/
	$(PY) -m emolib.research.runner dry-run --profile $(PROFILE)

index: ## rebuild reports/index.html from the reports present
	$(PY) -m emolib.research.runner index

# Rebuilt on every call (a second at most): its stale marks compare the reports with today's inputs.
$(REPORTS)/index.html: $(NOTEBOOKS:%=$(REPORTS)/html/%.html) FORCE
	@$(PY) -m emolib.research.runner index

# A notebook also shows the recipe studies of its profile recorded for it (emolib.research.studies):
# params/studies/<profile>/<its number>_*.json.
.SECONDEXPANSION:
$(REPORTS)/html/%.html: notebooks/%.ipynb $(REPORTS)/.params/%.yaml $(EMOLIB_SRC) \
    $$(wildcard params/studies/$(PROFILE)/$$(firstword $$(subst _, ,$$*))_*.json)
	$(PY) -m emolib.research.runner run $* --profile $(PROFILE) --threads $(NB_THREADS)

# 05 analyses the training notebooks' checkpoints; 06 demos the best of them where the profile says `model: best`.
$(patsubst %,$(REPORTS)/html/%.html,$(call notebooks,reads-checkpoints)): \
    $(patsubst %,$(REPORTS)/html/%.html,$(call notebooks,trains))

# Always checked, rewritten only when the content changed (make compares mtimes after the recipe).
$(REPORTS)/.params/%.yaml: FORCE
	@$(PY) -m emolib.research.runner params $* --profile $(PROFILE) --out $@

.PRECIOUS: $(REPORTS)/.params/%.yaml
FORCE:

# JupyterLab as any user (root in Docker and cloud notebooks too), on this machine only unless
# LAB_IP says otherwise, at a fixed port (taken: an error, not another port the printed URL would miss).
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888
lab: ## JupyterLab on notebooks/ (kernel `emolib`) at 127.0.0.1:8888 (LAB_IP=0.0.0.0, LAB_PORT=...); prints the URL with its token
	@token=$${JUPYTER_TOKEN:-$$($(PY) -c 'import secrets; print(secrets.token_hex(24))')}; \
	root=$$( [ "$$(id -u)" = 0 ] && echo --allow-root ); \
	echo "JupyterLab: http://$(LAB_IP):$(LAB_PORT)/lab?token=$$token  (Ctrl-C stops it)"; \
	JUPYTER_TOKEN=$$token exec $(VENV)/bin/jupyter lab --no-browser --ip=$(LAB_IP) --port=$(LAB_PORT) \
	  --ServerApp.port_retries=0 --ServerApp.root_dir=notebooks $$root

# Offline: the logs of every run under the models root (training with `logger: tensorboard` writes them into
# <model folder>/tensorboard/); TensorBoard's own note that TensorFlow is not installed is expected.
TB_PORT ?= 6006
tensorboard: ## TensorBoard on the training logs under the models root (LOGDIR=..., TB_PORT=6006; `logger: tensorboard` writes them)
	@logdir=$${LOGDIR:-$$($(PY) -c 'from emolib.core import paths; print(paths.models_dir())')}; \
	echo "TensorBoard on $$logdir: http://$(LAB_IP):$(TB_PORT)/  (Ctrl-C stops it)"; \
	exec $(VENV)/bin/tensorboard --logdir "$$logdir" --host $(LAB_IP) --port $(TB_PORT)

# What it cannot get (messi5.jpg and building.jpg come from Debian's opencv-doc) is skipped with one line.
bench: ## this machine's speed and recall figures -> reports/bench/bench.json (docs/benchmarks.md: publishing a run)
	$(PY) -m emolib.bench

# The `fer` package needs TensorFlow, which stays out of .venv: it gets its own environment (about 2 GB).
PEERS_VENV := .venv-peers
PEERS_LOCK := emolib/bench/peers-requirements.txt
bench-peers: ## emolib against the `fer` package (in its own .venv-peers) on the same real photos -> reports/bench/peers.json
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(PEERS_LOCK)
	$(PEERS_VENV)/bin/python -m pip install -q --disable-pip-version-check --no-deps fer==25.10.3
	$(PY) -m emolib.bench.group_photos >/dev/null
	$(PY) -m emolib.bench.peers --python $(PEERS_VENV)/bin/python

clean: ## remove generated reports and derived caches (data/raw and assets stay)
	@# reports/history.jsonl stays: it is the record of past runs, not a report.
	rm -rf reports/html reports/figures reports/thumbs reports/metrics reports/index.html reports/bench \
	  reports/.params reports/.staging reports/.published reports/scratch reports/dry-run
	find data/cache -maxdepth 1 -name '*.npz' -delete 2>/dev/null || true
