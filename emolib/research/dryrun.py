"""Dry runs: every notebook of a profile, every code path, on a CPU in minutes (`make dry-run`).

The runner (`emolib.research.runner dry-run`) runs each notebook with `Caps`, as plain values:

- the profile's training sections are capped through the notebook's ``overrides`` (`cap_overrides`):
  ``epochs``, ``batch_size`` and ``max_batches`` (training batches per epoch), so a ViT-B/16 at 224 px
  trains on a laptop's CPU; so are the sample counts the notebooks table names (05's ``cam_samples``).
  The report's header lists them as overrides of the profile;
- the session (`emolib.research.session.setup`) keeps the first ``batches × batch_size`` rows of the
  validation and test splits for the notebooks that train or evaluate (`cap_eval_splits`);
- missing ImageNet weights become a random initialization (never a download) when a notebook creates a
  pretrained model (`emolib.research.experiment.create_model`); the run records each substitution
  (`SUBSTITUTIONS_FILE` in its output folder) and the runner puts them at the top of the report.

Everything else (architectures, input sizes, TTA modes, evidence rows, data lookup, report cells)
is the profile's own. The training and evaluation loops know nothing of dry runs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from emolib.core.atomic import write_text
from emolib.core.settings import TrainConfig, from_mapping
from emolib.research.notebooks import notebook as notebook_row
from emolib.research.profiles import NESTED

__all__ = ["Caps", "cap_overrides", "cap_eval_splits", "record_substitution", "substitutions", "banner"]

SUBSTITUTIONS_FILE = "dry-run-substitutions.json"   # in the run's output folder (the runner's staging folder)


@dataclass(frozen=True)
class Caps:
    epochs: int = 2            # training epochs at most
    batches: int = 2           # batches per epoch (training) and rows per evaluation pass (batches × batch_size)
    batch_size: int = 8        # rows per batch at most
    samples: int = 8           # Grad-CAM / deletion faces (a notebook's sample parameters)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Caps":
        caps = from_mapping(cls, values, "dry-run cap")
        if min(asdict(caps).values()) < 1:
            raise ValueError(f"every dry-run cap must be >= 1, got {caps}")
        return caps

    def describe(self) -> str:
        return (f"training {self.epochs} epochs × {self.batches} batches of at most {self.batch_size} faces; "
                f"every evaluation {self.batches} batches of at most {self.batch_size}; "
                f"Grad-CAM on {self.samples} faces")


def cap_overrides(notebook: str, parameters: dict, caps: Caps) -> dict:
    """The overrides a dry run passes the notebook: its training sections and sample counts capped."""
    out = {}
    for key, value in parameters.items():
        if NESTED.get(key) is TrainConfig:
            train = TrainConfig.from_dict(value)
            out[key] = {"epochs": min(train.epochs, caps.epochs), "batch_size": min(train.batch_size, caps.batch_size),
                        "max_batches": caps.batches}
    out.update({k: min(parameters[k], caps.samples) for k in notebook_row(notebook).sample_parameters
                if parameters[k] > caps.samples})
    return out


def cap_eval_splits(data, caps: Caps):
    """`data` with its validation and test splits cut to their first ``batches × batch_size`` rows."""
    return data.first_rows(caps.batches * caps.batch_size, splits=("val", "test"))


def record_substitution(folder: Path, line: str) -> None:
    """Add `line` to the substitutions recorded in `folder` (the run's output folder) for the report's banner."""
    found = substitutions(folder)
    if line not in found:
        write_text(Path(folder) / SUBSTITUTIONS_FILE, json.dumps(found + [line], indent=1))


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
