"""One row of the results table: the one definition of how a trained model's test figures are reported.

Notebooks 02-04 (through `emolib.research.experiment.notebook_metrics`, and so `emolib train`) and notebook
05's ensemble each put a list of these rows under ``"results"`` in their metrics; the index
(`emolib.research.dashboard`) reads every published notebook's rows back into one sortable table.

    row = result_row(model="cnn_fer", init="scratch", test=evaluate(net, data.split("test")),
                     classes=data.classes, parameters=count_parameters(net), best_epoch=7,
                     checkpoint=out_dir / "best.pt")

``ms_per_face`` is a timing figure: `Run.write_metrics` moves it to ``<notebook>.run.json`` (the metrics file
stays byte-identical between identical runs); `published_rows` puts it back.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from emolib.core import paths

if TYPE_CHECKING:                # the index reads rows without importing torch
    from torch import nn

__all__ = ["RESULT_KEYS", "INIT_SCRATCH", "checkpoint_name", "count_parameters", "init_name", "published_rows",
           "result_row"]

RESULT_KEYS = ("model", "init", "classes", "test_accuracy", "test_macro_f1", "test_ece", "parameters",
               "ms_per_face", "best_epoch", "checkpoint")
INIT_SCRATCH = "scratch"        # random initial weights (`init_name` words the pretrained ones)


def result_row(*, model: str, init: str, test: dict, classes, parameters: int,
               best_epoch: int | None, checkpoint: str | os.PathLike | None) -> dict:
    """A JSON-able row with exactly `RESULT_KEYS`.

    test: what `emolib.training.evaluate.evaluate` returns. checkpoint: a checkpoint file (its short name under the
    models root is kept, `checkpoint_name`), a short name, or None (an ensemble has no single checkpoint)."""
    return {"model": str(model), "init": str(init), "classes": [str(c) for c in classes],
            "test_accuracy": _number(test.get("accuracy")), "test_macro_f1": _number(test.get("macro_f1")),
            "test_ece": _number(test.get("ece")), "parameters": int(parameters),
            "ms_per_face": _number(test.get("ms_per_face")),
            "best_epoch": None if best_epoch is None else int(best_epoch), "checkpoint": checkpoint_name(checkpoint)}


def _number(value) -> float | None:
    return None if value is None else float(value)


def checkpoint_name(path: str | os.PathLike | None) -> str | None:
    """A checkpoint's short name (`emolib.core.paths.short_name`) when it lies under the models root; else the
    path as given (a run written elsewhere, e.g. `emolib train --out`, or a name that already is a short name)."""
    if path is None:
        return None
    try:
        return paths.short_name(Path(path))
    except ValueError:
        return str(path)


def count_parameters(net: nn.Module) -> int:
    """Every parameter of the model, trainable or frozen: its size, whatever the recipe trained."""
    return sum(p.numel() for p in net.parameters())


def init_name(model: str, pretrained: bool) -> str:
    """How a model's initial weights read in the table: "scratch", or the dataset its pretrained weights were
    trained on (e.g. "ImageNet-1k"), so 03's and 04's pretrained rows say where they start from."""
    from emolib.models import entry
    if not pretrained:
        return INIT_SCRATCH
    weights = entry(model).weights
    return weights.dataset if weights is not None and weights.dataset else "pretrained"


def published_rows(metrics_file: dict, run_file: dict | None = None) -> list[dict]:
    """The result rows of a published notebook: its ``metrics/<nb>.json`` (as loaded) and, for ms/face, its
    ``<nb>.run.json`` (None or {}: ms/face unknown). A key a row lacks (an older report) reads None."""
    rows = (metrics_file.get("metrics") or {}).get("results") or []
    timing = ((run_file or {}).get("timing") or {}).get("results") or {}
    out = []
    for i, row in enumerate(rows):
        full = {k: row.get(k) for k in RESULT_KEYS}
        if full["ms_per_face"] is None:
            full["ms_per_face"] = (timing.get(str(i)) or {}).get("ms_per_face")
        out.append(full)
    return out
