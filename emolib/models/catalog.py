"""The trained models present under the models root: what `emolib models` lists, and their short names.

Training writes ``<models>/<profile>/<notebook>/<model>/best.pt`` (``dry-run/`` and ``scratch/`` runs one
level deeper: see `emolib.core.runs`). A checkpoint's short name is its path under the models root without
``/best.pt`` (or without its suffix), e.g. ``quick/02_cnn_baseline/cnn_fer``; `--model` accepts it
(`emolib.core.paths.candidates` is the one rule for turning a ``--model`` value into files to try).

Listing reads each checkpoint's metadata with a memory-mapped ``torch.load`` (weights_only), so even a
500 MB checkpoint costs milliseconds; the weights are never read.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from emolib.core import paths
from emolib.core.paths import BEST, CHECKPOINT_SUFFIXES, short_name


@dataclass
class TrainedModel:
    short_name: str
    path: str
    model_name: str | None = None
    classes: tuple[str, ...] = ()
    input: str = ""
    kind: str | None = None          # published | dry-run | scratch (emolib.core.runs.KINDS), from the layout
    profile: str | None = None
    data: str | None = None          # the data it was trained on, when the checkpoint records it
    test_accuracy: float | None = None
    test_macro_f1: float | None = None   # these four and best_epoch: None in a checkpoint evaluated before they
    test_ece: float | None = None        # were recorded (`emolib.models.checkpoint.record_evaluation`)
    parameters: int | None = None
    ms_per_face: float | None = None
    best_epoch: int | None = None
    val_accuracy: float | None = None
    created: str | None = None
    error: str | None = None         # set when the file is not a readable emolib checkpoint

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d


def _layout(rel: Path) -> tuple[str | None, str | None]:
    """(kind, profile) from a path under the models root, as `emolib.core.paths.checkpoints_root` lays them out."""
    from emolib.core.paths import RESERVED
    parts = rel.parts
    if len(parts) >= 5 and parts[0] in RESERVED:      # dry-run/<profile>/<notebook>/<model>/best.pt
        return parts[0], parts[1]
    if len(parts) >= 4 and parts[0] not in RESERVED:  # <profile>/<notebook>/<model>/best.pt
        return "published", parts[0]
    return None, None


def _checkpoint_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = [f for f in filenames if f.endswith(CHECKPOINT_SUFFIXES) and not f.startswith(".")]
        for f in sorted(names):
            if f == "last.pt" and BEST in names:      # the resume point of the run whose best.pt is listed
                continue
            files.append(Path(dirpath) / f)
    return files


def describe(path: Path, root: Path | None = None) -> TrainedModel:
    """What `emolib models` shows for one checkpoint file (an unreadable file gets `error`, no exception)."""
    from emolib.models.checkpoint import CheckpointError, load_checkpoint
    root = root or paths.models_dir()
    item = TrainedModel(short_name=short_name(path, root), path=str(path))
    item.kind, item.profile = _layout(Path(path).resolve().relative_to(root.resolve()))
    try:
        try:
            ckpt = load_checkpoint(path, mmap=True)
        except CheckpointError:          # not a zip-format torch file: read it plainly for the real reason
            ckpt = load_checkpoint(path)
    except (CheckpointError, OSError) as exc:
        item.error = str(exc).replace(f"{path}: ", "", 1).replace(f"{path} ", "", 1)
        return item
    spec, metrics = ckpt.get("spec") or {}, ckpt.get("metrics") or {}
    item.model_name, item.classes = ckpt["model_name"], tuple(ckpt["classes"])
    if spec:
        item.input = f"{spec['input_size']}x{spec['input_size']} {'gray' if spec['channels'] == 1 else 'RGB'}"
    item.test_accuracy, item.test_macro_f1, item.test_ece, item.ms_per_face, item.val_accuracy = (
        _number(metrics.get(k)) for k in ("test_accuracy", "test_macro_f1", "test_ece", "ms_per_face", "val_acc"))
    item.parameters = _integer(metrics.get("parameters"))
    # A best.pt is saved at its best epoch: its "epoch" says so even where best_epoch was not recorded.
    item.best_epoch = _integer(metrics.get("best_epoch", metrics.get("epoch") if Path(path).name == BEST else None))
    data = ckpt.get("data")
    if isinstance(data, dict) and data.get("source"):
        item.data = str(data["source"]) + (f" ({data['fingerprint']})" if data.get("fingerprint") else "")
    item.created = ckpt.get("created")
    return item


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value) -> int | None:
    return int(value) if _number(value) is not None else None


def find_trained(root: str | os.PathLike | None = None) -> list[TrainedModel]:
    """Every checkpoint under the models root (default `paths.models_dir()`), sorted by short name."""
    root = Path(root) if root is not None else paths.models_dir()
    if not root.is_dir():
        return []
    return [describe(p, root) for p in _checkpoint_files(root)]
