"""A notebook's first cells as one call: parameters from the profile, the data, the report header.

Every notebook's parameters cell holds two values, which the runner (papermill) injects::

    profile = "quick"      # params/<profile>.yaml: its section, common merged in, is this run's configuration
    overrides = {}         # values that win over the profile for this run only

and its setup cell is::

    cfg, data, run = session.setup("02_cnn_baseline", profile, overrides)
    run                    # displays the header: profile, overrides, data fingerprint, code, date, kind of run

So JupyterLab runs exactly the experiment `make reproduce` publishes unless an override says otherwise,
and the header says which values differ. Outside the runner the run is a scratch run (emolib.core.runs).
"""
from __future__ import annotations

from typing import Any, Mapping

from emolib.research import profiles, reporting

__all__ = ["configure", "setup"]


def configure(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None):
    """The notebook's validated config: `profiles.resolve` (profile section + overrides) as its dataclass."""
    return profiles.validate(notebook, profiles.resolve(notebook, profile, overrides))


def setup(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None):
    """(cfg, data, run): the validated config, the data (loaded, class subset taken) and the open report."""
    from emolib.data import load
    cfg = configure(notebook, profile, overrides)
    data = load(cfg.source, cfg.data_path, **cfg.data_options).subset(cfg.classes)
    return cfg, data, reporting.start(cfg, data)
