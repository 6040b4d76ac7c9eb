"""Checkpoints that carry everything needed to use them, loaded without unpickling objects.

A checkpoint is a plain dict saved with `torch.save` and read back with ``weights_only=True``:
tensors, numbers, strings, lists, tuples and dicts only. Besides the weights it holds the model
name and constructor keywords, the ModelSpec, the class names, the run's config and metrics, the
emolib version and git commit, and optionally the training `state` (optimizer, scheduler, epoch,
RNG) for resuming.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolib.core.atomic import atomic_write
from emolib.core.errors import EmolibError
from emolib.core.labels import canonical, resolve_classes
from emolib.core.provenance import __version__, git_commit

FORMAT = "emolib-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_name", "model_kwargs", "spec", "classes",
                 "num_classes", "state_dict")


class CheckpointError(EmolibError, ValueError):
    """A file that is not an emolib checkpoint, or one for another model or class set."""


def to_plain(obj, where: str = "value"):
    """Convert `obj` to what ``torch.load(weights_only=True)`` accepts; unknown types raise."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value, where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_plain(dataclasses.asdict(obj), where)
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (int, str)) else k: to_plain(v, f"{where}[{k!r}]")
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        out = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(out) if isinstance(obj, tuple) else out
    raise TypeError(f"{where}: cannot store a {type(obj).__name__} in a checkpoint "
                    "(use tensors, numbers, strings, lists and dicts)")


def save_checkpoint(path, model: nn.Module, *, classes, config: dict, metrics: dict,
                    state: dict | None = None) -> Path:
    """Write `model` and its metadata to `path` atomically (`emolib.core.atomic`)."""
    name = getattr(model, "model_name", None)
    spec = getattr(model, "spec", None)
    if name is None or spec is None:
        raise ValueError("save_checkpoint needs a model built by emolib.models.create "
                         "(it carries .model_name and .spec)")
    classes = [canonical(c) for c in classes]
    num_classes = _num_outputs(model)
    if num_classes is not None and num_classes != len(classes):
        raise ValueError(f"model {name!r} has {num_classes} outputs but {len(classes)} class names were given")
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": name,
        "model_kwargs": to_plain(dict(getattr(model, "model_kwargs", {})), "model_kwargs"),
        "spec": to_plain(spec.to_dict(), "spec"),
        "classes": classes,
        "num_classes": len(classes),
        "config": _plain_dict(config, "config"),
        "metrics": _plain_dict(metrics, "metrics"),
        "emolib_version": __version__,
        "git_commit": git_commit(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "state": to_plain(state, "state") if state is not None else None,
    }
    path = Path(path)
    with atomic_write(path) as f:   # a reader never sees a half-written checkpoint
        torch.save(ckpt, f)
    return path


def _plain_dict(obj, where: str) -> dict:
    """A dict (or dataclass, e.g. a TrainConfig) as plain types."""
    out = to_plain(obj, where)
    if not isinstance(out, dict):
        raise TypeError(f"{where} must be a dict or a dataclass, got {type(obj).__name__}")
    return out


def _num_outputs(model: nn.Module) -> int | None:
    num = getattr(model, "num_classes", None)
    return int(num) if isinstance(num, int) else None


def load_checkpoint(path, *, expect_model: str | None = None, expect_classes=None, mmap: bool = False) -> dict:
    """Read a checkpoint (tensors and plain types only) and check it is what the caller expects.

    `expect_classes` is a list of names (any alias) or a subset name ("all", "five"). `mmap`: map the
    tensors instead of reading them (for reading the metadata of many checkpoints cheaply).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # torch's own text here advises weights_only=False, which is exactly what emolib refuses to do.
        raise CheckpointError(f"{path} is not a readable emolib checkpoint (not a PyTorch file, or one that "
                              "stores Python objects: emolib loads tensors and plain types only)") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a bad file
        raise CheckpointError(f"{path} is not a readable emolib checkpoint "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        found = (f"a dict with keys {sorted(map(str, ckpt))[:6]}" if isinstance(ckpt, dict)
                 else f"a {type(ckpt).__name__}")
        hint = " (it looks like a bare state_dict)" if isinstance(ckpt, dict) and ckpt and all(
            isinstance(v, torch.Tensor) for v in ckpt.values()) else ""
        raise CheckpointError(f"{path} is not an emolib checkpoint: found {found}{hint}; "
                              "write checkpoints with emolib.models.checkpoint.save_checkpoint")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format_version']} is newer than this "
                              f"emolib ({__version__}) understands ({FORMAT_VERSION})")
    if missing := [k for k in REQUIRED_KEYS if k not in ckpt]:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if expect_model is not None and ckpt["model_name"] != expect_model:
        raise CheckpointError(f"{path}: expected a checkpoint of model {expect_model!r}, "
                              f"found {ckpt['model_name']!r}")
    if expect_classes is not None:
        want = (list(resolve_classes(expect_classes)) if isinstance(expect_classes, str)
                else [canonical(c) for c in expect_classes])
        if list(ckpt["classes"]) != want:
            raise CheckpointError(f"{path}: expected classes {want}, found {list(ckpt['classes'])}")
    return ckpt


def load_model(path, device="cpu", *, expect_model: str | None = None,
               expect_classes=None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint (no pretrained download) and load its weights strictly.

    Returns ``(model in eval mode on `device`, checkpoint dict)``; ``model.classes`` holds the
    checkpoint's class names (one per output, in output order).
    """
    from emolib.core.spec import ModelSpec
    from emolib.models import create

    ckpt = load_checkpoint(path, expect_model=expect_model, expect_classes=expect_classes)
    model = create(ckpt["model_name"], num_classes=ckpt["num_classes"], pretrained=False,
                   **ckpt["model_kwargs"])
    stored = ModelSpec.from_dict(ckpt["spec"])
    if model.spec != stored:
        raise CheckpointError(f"{path}: the checkpoint's input spec {stored} differs from what "
                              f"{ckpt['model_name']!r} builds now ({model.spec}); the code changed since it was saved")
    model.spec = stored                  # with the framing it was trained with (not part of the comparison)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit {ckpt['model_name']!r}: {exc}") from exc
    model.classes = tuple(ckpt["classes"])   # what each output means: callers need not guess the seven emotions
    from emolib.core.runtime import resolve_device
    return model.to(resolve_device(device)).eval(), ckpt


def record_evaluation(path, test_metrics: dict, data=None, *, parameters: int | None = None,
                      best_epoch: int | None = None) -> Path:
    """Add a test evaluation to a saved checkpoint (atomically), so the file says how good it is.

    `test_metrics`: what `emolib.training.evaluate.evaluate` returns; its accuracy, macro_f1, ece and ms_per_face
    are kept as metrics ``test_accuracy``, ``test_macro_f1``, ``test_ece`` and ``ms_per_face`` (those it holds).
    `parameters` (the model's total count) and `best_epoch` (the epoch best.pt holds) go beside them. `data`:
    the data it was trained and tested on, a dict with ``source`` and ``fingerprint`` (e.g. a notebook run's
    ``run.data``). `emolib models` shows all of them.
    """
    path = Path(path)
    ckpt = load_checkpoint(path)
    kept = {name: float(test_metrics[key]) for key, name in _EVALUATION_KEYS.items() if test_metrics.get(key) is not None}
    kept.update({name: int(v) for name, v in (("parameters", parameters), ("best_epoch", best_epoch)) if v is not None})
    ckpt["metrics"] = {**(ckpt.get("metrics") or {}), **kept}
    if data is not None:
        ckpt["data"] = {k: to_plain(data[k], f"data[{k!r}]") for k in ("source", "fingerprint", "n") if k in data}
    with atomic_write(path) as f:
        torch.save(ckpt, f)
    return path


# evaluate()'s key -> the checkpoint metric `record_evaluation` stores it as
_EVALUATION_KEYS = {"accuracy": "test_accuracy", "macro_f1": "test_macro_f1", "ece": "test_ece",
                    "ms_per_face": "ms_per_face"}
