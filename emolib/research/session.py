"""A notebook's first cells as one call: parameters from the profile, the data, the report header.

Every notebook's parameters cell holds two values, which the runner (papermill) injects::

    profile = "quick"      # params/<profile>.yaml: its section, common merged in, is this run's configuration
    overrides = {}         # values that win over the profile for this run only

and its setup cell is::

    cfg, data, run = session.setup("02_cnn_baseline", profile, overrides)
    run                    # displays the header: profile, overrides, data fingerprint, code, date, kind of run

So JupyterLab runs exactly the experiment `make reproduce` publishes unless an override says otherwise,
and the header says which values differ.

This is the session boundary. The runner (`emolib.research.runner`) tells the kernels it starts what kind of
run they are part of through one environment variable, `RUNNER_ENV`: JSON with ``kind`` (published or
dry-run), ``output_root`` (its staging folder: figures and metrics go there first) and ``caps`` (a dry run's
`emolib.research.dryrun.Caps`, else null). It is read here, once per report, and becomes the `Run`'s fields;
below this module, values travel as arguments. Without it the run is a scratch run (`emolib.core.paths`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from emolib.research import dryrun, profiles, reporting
from emolib.research.notebooks import notebook as notebook_row

__all__ = ["RUNNER_ENV", "apply_near_duplicates", "configure", "setup", "start", "runner_context"]

RUNNER_ENV = "EMOLIB_RUNNER"


def configure(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None):
    """The notebook's validated config: `profiles.resolve` (profile section + overrides) as its dataclass."""
    return profiles.validate(notebook, profiles.resolve(notebook, profile, overrides))


def runner_context() -> dict:
    """The `Run` fields the runner set for this kernel (`RUNNER_ENV`); {} outside the runner: a scratch run."""
    text = os.environ.get(RUNNER_ENV)
    if not text:
        return {}
    values = json.loads(text)
    if set(values) != {"kind", "output_root", "caps"}:
        raise ValueError(f"{RUNNER_ENV}: expected the keys kind, output_root and caps, got {sorted(values)}")
    caps = dryrun.Caps.from_dict(values["caps"]) if values["caps"] is not None else None
    return {"kind": values["kind"], "output_root": Path(values["output_root"]), "caps": caps, "headless": True}


def setup(notebook: str, profile: str, overrides: Mapping[str, Any] | None = None, *, output_root=None):
    """(cfg, data, run): the validated config, the data (loaded, class subset taken) and the open report.

    output_root: figures and metrics in this folder and checkpoints in <output_root>/<model>/ (`emolib train
    --out`); default: where the kind of run puts them."""
    from emolib.data import load
    cfg = configure(notebook, profile, overrides)
    full = load(cfg.source, cfg.data_path, **cfg.data_options).subset(cfg.classes)
    data, removed = apply_near_duplicates(full, cfg.near_duplicates, cfg.near_duplicate_radius)
    context = runner_context()
    row = notebook_row(profiles.notebook_name(notebook))
    if context.get("caps") is not None and (row.trains or row.reads_checkpoints):
        data = dryrun.cap_eval_splits(data, context["caps"])      # a dry run evaluates a few rows
        full = dryrun.cap_eval_splits(full, context["caps"])
    run = _start(cfg, data, context, output_root)
    if removed is not None:
        run.data["near_duplicates"] = removed                     # in the metrics JSON's data info
        run.standard_test = full.split("test")                    # both test figures are reported
    return cfg, data, run


def apply_near_duplicates(data, mode: str, radius: int):
    """(data, None) for ``keep``; for ``drop_from_eval``, the data without the val/test rows that have a
    near-duplicate in train and the record of what went (printed: nothing leaves silently)."""
    if mode == "keep":
        return data, None
    from emolib.data import near_duplicates
    found = near_duplicates.audit(data, radius)
    data, removed = near_duplicates.drop_from_eval(data, found)
    print(data.notes[-1])
    return data, removed


def start(cfg, data=None, *, output_root=None):
    """The report of a notebook that opens it on other data than `setup` loads (06: a video clip's info dict)."""
    return _start(cfg, data, runner_context(), output_root)


def _start(cfg, data, context: dict, output_root):
    if output_root is not None:
        context = {**context, "output_root": Path(output_root), "checkpoints": Path(output_root)}
    return reporting.start(cfg, data, **context)
