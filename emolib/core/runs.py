"""Kinds of run and where each one's outputs live: the one place that knows the layout.

- ``published``: `make reproduce` (emolib.research.runner). The only writer of the published reports
  (``<reports>/html|figures|metrics``) and of the profile's checkpoints (``<models>/<profile>/``).
- ``dry-run``: the runner with training and evaluation capped; ``<reports>/dry-run/<profile>/`` and
  ``<models>/dry-run/<profile>/``, same layout, its own index.
- ``scratch``: anything else, e.g. a notebook run cell by cell in JupyterLab. Its figures and metrics go
  to ``<reports>/scratch/<profile>/`` and its checkpoints to ``<models>/scratch/<profile>/`` (both
  git-ignored), so an experiment never overwrites what the published reports show.

The runner tells the kernel which kind it is through ``EMOLIB_RUN_KIND``; without it a run is scratch.
While the runner executes a notebook, figures and metrics go to its staging folder
(``EMOLIB_REPORT_STAGING``) first and are moved into the kind's reports root only when every cell passed.
"""
from __future__ import annotations

import os
from pathlib import Path

from emolib.core import paths

KIND_ENV = "EMOLIB_RUN_KIND"
STAGING_ENV = "EMOLIB_REPORT_STAGING"
KINDS = ("published", "dry-run", "scratch")
# Folder names under the reports and models roots: a profile may not be called like one of them.
RESERVED = ("scratch", "dry-run")


def kind() -> str:
    """This process's kind of run: what the runner set in ``EMOLIB_RUN_KIND``, else scratch."""
    value = os.environ.get(KIND_ENV) or "scratch"
    if value not in KINDS:
        raise ValueError(f"{KIND_ENV}={value!r}: expected one of {', '.join(KINDS)}")
    return value


def _check(kind_: str, profile: str) -> None:
    if kind_ not in KINDS:
        raise ValueError(f"unknown kind of run {kind_!r}; kinds: {', '.join(KINDS)}")
    if profile in RESERVED:
        raise ValueError(f"a profile may not be named {profile!r}: the name is a folder of the reports root")


def reports_root(kind_: str, profile: str) -> Path:
    """Where the finished reports of this kind live (html/, figures/, metrics/, index.html)."""
    _check(kind_, profile)
    base = paths.reports_dir()
    return base if kind_ == "published" else base / kind_ / profile


def checkpoints_root(kind_: str, profile: str) -> Path:
    """Where this kind's training runs write <notebook>/<model>/best.pt."""
    _check(kind_, profile)
    base = paths.models_dir()
    return base / profile if kind_ == "published" else base / kind_ / profile


def output_root(profile: str) -> Path:
    """Where this process writes figures and metrics now: the runner's staging folder, else the kind's root."""
    staging = os.environ.get(STAGING_ENV)
    return Path(staging) if staging else reports_root(kind(), profile)
