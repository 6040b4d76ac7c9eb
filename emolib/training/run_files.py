"""What a training run leaves beside best.pt and last.pt for a reader: config.yaml and history.csv.

    config.yaml   the run's TrainConfig (``train``), what the caller knows (``context``: a notebook's resolved
                  section, the user's overrides, ...), seed, device, world size, package versions, git commit;
                  written when the run starts (again when it resumes: the device or world size may differ)
    history.csv   one row an epoch (`COLUMNS`), rewritten after every epoch: a killed run keeps the epochs it
                  completed, and a resumed one the rows of the epochs before (last.pt's history holds them)

`emolib.training.loop.fit` writes them through `RunFiles`, on rank 0, whenever it has an out_dir; with
``logger: tensorboard`` the same epochs go to TensorBoard too (`emolib.training.tensorboard`). Both files are
written atomically: a reader sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import csv
import datetime as _dt
import importlib.metadata
import io
import json
import platform
from pathlib import Path

import torch
import yaml

from emolib.core import provenance, runtime
from emolib.core.atomic import write_text
from emolib.core.settings import TrainConfig
from emolib.training import tensorboard
from emolib.training.state import HISTORY_KEYS

__all__ = ["CONFIG", "HISTORY", "COLUMNS", "RunFiles", "package_versions", "write_config", "write_history"]

CONFIG, HISTORY = "config.yaml", "history.csv"
COLUMNS = ("epoch", *HISTORY_KEYS)
# The distributions whose versions can change what a run computes.
VERSIONED = ("torch", "torchvision", "numpy", "scikit-learn", "opencv-python", "pillow")


def package_versions() -> dict:
    """Python, emolib and `VERSIONED` (None where one is not installed), and the CUDA torch was built for."""
    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None
    return {"python": platform.python_version(), "emolib": provenance.__version__,
            **{d: version(d) for d in VERSIONED}, "cuda": torch.version.cuda}


def _plain(obj):
    """YAML-ready: tuples to lists, paths and other objects to their text."""
    return json.loads(json.dumps(obj, default=str))


def write_config(out_dir: str | Path, cfg: TrainConfig, *, device, world_size: int, context: dict | None = None,
                 resumed_from_epoch: int | None = None) -> Path:
    """out_dir/config.yaml: the resolved training section and everything else needed to tell two runs apart."""
    doc = {"train": cfg.to_dict(), **(context or {}), "seed": cfg.seed, "device": str(device),
           "world_size": world_size, "global_batch_size": cfg.batch_size * world_size,
           "resumed_from_epoch": resumed_from_epoch, "versions": package_versions(),
           "git_commit": provenance.git_commit(),
           "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    text = yaml.safe_dump(_plain(doc), sort_keys=False, default_flow_style=False, allow_unicode=True)
    return write_text(Path(out_dir) / CONFIG, text)


def write_history(out_dir: str | Path, history: dict) -> Path:
    """out_dir/history.csv: one row per completed epoch of `history` (fit's); an unknown value is an empty cell."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for i in range(len(history["train_loss"])):
        w.writerow([i + 1, *(history[k][i] for k in HISTORY_KEYS)])    # floats as repr: they read back exactly
    return write_text(Path(out_dir) / HISTORY, buf.getvalue())


class RunFiles:
    """config.yaml when a run starts, history.csv and TensorBoard's scalars after every epoch (rank 0 writes).

    Checks on every rank, before any epoch, what would stop a logger later: ``logger`` needs an out_dir and
    the tensorboard package."""

    def __init__(self, out_dir: Path | None, cfg: TrainConfig, *, device, history: dict, start_epoch: int,
                 context: dict | None = None):
        if cfg.logger is not None:
            if out_dir is None:
                raise ValueError(f"logger={cfg.logger!r} writes beside the checkpoints: set out_dir")
            tensorboard.require()
        # in the history on every rank (as its checkpoints are): where the research layer adds its test figures
        self.tensorboard_dir = str(tensorboard.log_dir(out_dir)) if cfg.logger == "tensorboard" else None
        self.out_dir = out_dir if runtime.is_main() else None
        self.scalars = None
        if self.out_dir is None:
            return
        write_config(self.out_dir, cfg, device=device, world_size=runtime.world_size(), context=context,
                     resumed_from_epoch=history.get("resumed_from_epoch"))
        write_history(self.out_dir, history)
        if cfg.logger == "tensorboard":
            self.scalars = tensorboard.EpochScalars(self.out_dir, start_epoch)

    def epoch_end(self, history: dict) -> None:
        if self.out_dir is None:
            return
        write_history(self.out_dir, history)
        if self.scalars is not None:
            self.scalars.log(history)

    def close(self) -> None:
        if self.scalars is not None:
            self.scalars.close()
