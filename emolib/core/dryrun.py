"""Dry runs: every notebook of a profile, every code path, on a CPU in minutes (`make dry-run`).

The runner (`emolib.research.runner dry-run`) sets ``EMOLIB_DRY_RUN`` to a `Caps` as JSON; the notebook
kernels inherit it, and three places honour it, none of them in a notebook:

- the training loop and the evaluation loop (`emolib.training.loop`, `emolib.training.evaluate`) iterate
  `capped(loader)`: ``batches`` batches of at most ``batch_size`` rows (memory and time: a ViT-B/16
  at 224 px trains on a laptop's CPU), and training stops after ``epochs`` epochs (`cap_epochs`);
- the runner caps the profile's sample-count parameters (`CAPPED_PARAMETERS`, e.g. 05's
  ``cam_samples``) with the notebook's ``overrides``, so Grad-CAM runs on a few faces too;
- `models.create` asks `substitute_missing_weights` before loading ImageNet weights: in a dry run,
  weights that are not on disk become a random initialization (never a download), and the
  substitution is recorded. The runner puts every recorded substitution at the top of the report.

Everything else (architectures, input sizes, TTA modes, evidence rows, data lookup, report cells)
is the profile's own. Outside a dry run nothing here changes anything.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

__all__ = ["ENV", "Caps", "active", "cap_epochs", "capped", "CAPPED_PARAMETERS", "cap_overrides",
           "substitute_missing_weights", "substitutions", "banner"]

ENV = "EMOLIB_DRY_RUN"
SUBSTITUTIONS_FILE = "dry-run-substitutions.json"   # in the runner's staging folder


@dataclass(frozen=True)
class Caps:
    epochs: int = 2            # training epochs at most
    batches: int = 2           # batches per epoch (training) and per evaluation pass
    batch_size: int = 8        # rows per batch at most
    samples: int = 8           # Grad-CAM / deletion faces (the `CAPPED_PARAMETERS`)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Caps":
        from emolib.core.settings import from_mapping
        caps = from_mapping(cls, json.loads(text), "dry-run cap")
        if min(asdict(caps).values()) < 1:
            raise ValueError(f"{ENV}: every cap must be >= 1, got {caps}")
        return caps

    def describe(self) -> str:
        return (f"training {self.epochs} epochs × {self.batches} batches of at most {self.batch_size} faces; "
                f"every evaluation {self.batches} batches of at most {self.batch_size}; "
                f"Grad-CAM on {self.samples} faces")


def active() -> Caps | None:
    """The caps of the dry run this process is part of, or None (a real run)."""
    text = os.environ.get(ENV)
    return Caps.from_json(text) if text else None


def cap_epochs(epochs: int) -> int:
    caps = active()
    return epochs if caps is None else min(epochs, caps.epochs)


def capped_len(n_batches: int) -> int:
    """How many batches `capped` yields from a loader of `n_batches` (the scheduler's steps per epoch)."""
    caps = active()
    return n_batches if caps is None else min(n_batches, caps.batches)


def capped(loader):
    """The loader's (x, y) batches; in a dry run, its first ``batches × batch_size`` rows in batches of
    ``batch_size`` (consecutive rows, so an evaluation's outputs line up with the split's first rows)."""
    caps = active()
    if caps is None:
        yield from loader
        return
    yield from islice(_rebatched(loader, caps.batch_size), caps.batches)


def _rebatched(loader, size: int):
    for x, y in loader:
        for start in range(0, len(y), size):
            yield x[start:start + size], y[start:start + size]


# Parameters that set how many faces a notebook pushes through the expensive paths; a dry run caps them.
CAPPED_PARAMETERS = {"05_error_analysis": ("cam_samples",)}


def cap_overrides(notebook: str, parameters: dict, caps: Caps) -> dict:
    """The overrides a dry run passes the notebook: its sample-count parameters capped (the report's
    header lists them as overrides of the profile)."""
    return {k: min(parameters[k], caps.samples) for k in CAPPED_PARAMETERS.get(notebook, ())
            if parameters[k] > caps.samples}


# ----------------------------------------------------------------------------------- substitutions

def _record_file() -> Path | None:
    """The runner's staging folder (where the report is assembled); None outside the runner."""
    from emolib.core.runs import STAGING_ENV
    staging = os.environ.get(STAGING_ENV)
    return Path(staging) / SUBSTITUTIONS_FILE if staging else None


def substitute_missing_weights(model_name: str, weights: Path | None, what: str) -> bool:
    """True when a dry run replaces `model_name`'s missing `what` weights (file `weights`) by a
    random initialization; the substitution is printed and recorded for the report's banner.
    False in a real run, or when the file is there (then it is loaded as in the real run)."""
    if active() is None or weights is None or weights.exists():
        return False
    line = (f"{model_name}: {what} weights are not on this machine ({weights.name} not in {weights.parent}); "
            f"a RANDOM INITIALIZATION stands in for them")
    print(f"DRY RUN: {line}")
    path = _record_file()
    found = substitutions(path.parent) if path is not None else []
    if path is not None and line not in found:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found + [line], indent=1))
    return True


def substitutions(folder: Path) -> list[str]:
    path = Path(folder) / SUBSTITUTIONS_FILE
    return json.loads(path.read_text()) if path.exists() else []


def banner(profile: str, caps: Caps, substituted: list[str]) -> str:
    """The first cell of a dry-run report: what was capped and what was substituted, impossible to miss."""
    subs = "".join(f"<li>{s}</li>" for s in substituted) or "<li>nothing: every weight file was present</li>"
    return (f"<div style='border:6px solid #c00;background:#fee;padding:1em;font-size:1.15em'>"
            f"<h1 style='color:#c00;margin-top:0'>DRY RUN of profile {profile}: every number below is meaningless</h1>"
            f"<p>This report proves that every code path of the profile runs; it measures nothing. "
            f"Capped: {caps.describe()}. Architectures, input sizes, data, TTA modes and evidence rows are the "
            f"profile's own.</p><p><b>Substituted:</b></p><ul>{subs}</ul></div>")
