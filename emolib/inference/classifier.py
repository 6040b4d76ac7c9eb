"""Which emotion classifier runs: a checkpoint, a pretrained emotion model, or an exported ONNX file.

`load_classifier` turns what a user names (a path, a checkpoint's short name, a registered model with
emotion weights, a module) into (model, classes, source); `resolve_backend` says whether PyTorch or ONNX
Runtime runs it. The recognizer, the exporter, the ONNX cache and the CLI share these.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from torch import nn

from emolib.core import paths
from emolib.core.labels import EMOTIONS
from emolib.core.runtime import resolve_device

DEFAULT_MODEL = "fer2013-mini-xception"


def pretrained_emotion_models() -> dict[str, tuple[str, ...]]:
    """Registered models whose pretrained weights classify emotions (their weights record has classes):
    name -> class names in the model's output order. Every other model needs a checkpoint."""
    from emolib.models import entry, list_models
    return {name: entry(name).weights.classes for name in list_models()
            if entry(name).weights is not None and entry(name).weights.predicts_emotions}


class Classifier(NamedTuple):
    """What `load_classifier` returns (unpacks as model, classes, source)."""
    model: nn.Module                # in eval mode, on the device asked for
    classes: tuple[str, ...]        # in the model's output order
    source: str                     # where it came from ("checkpoint <path>", "pretrained <name>", ...)


def load_classifier(model: str | os.PathLike | nn.Module = DEFAULT_MODEL, device: str = "cpu",
                    classes=None) -> Classifier:
    """The model in eval mode, its class names and a description of where it came from (a `Classifier`).

    `model`: a checkpoint path; a checkpoint name in `paths.models_dir()` (with or without its
    suffix); a registered model whose pretrained weights classify emotions ("fer2013-mini-xception");
    or an nn.Module with ``.spec`` (then `classes` gives its class names, default the seven emotions).
    """
    from emolib.models import checkpoint

    device = resolve_device(device)
    if isinstance(model, nn.Module):
        if not hasattr(model, "spec"):
            raise ValueError("a model passed as a module needs a .spec (build it with emolib.models.create)")
        names = tuple(classes) if classes is not None else getattr(model, "classes", EMOTIONS)
        return Classifier(model.to(device).eval(), tuple(names), getattr(model, "model_name", type(model).__name__))

    name = str(model)
    for path in paths.candidates(name):        # a path, a file in models/, or a short name
        if path.is_file():
            net, ckpt = checkpoint.load_model(path, device=device)
            return Classifier(net, tuple(ckpt["classes"]), f"checkpoint {path}")

    emotion_models = pretrained_emotion_models()
    if name in emotion_models:
        from emolib.models import create
        names = emotion_models[name]
        net = create(name, num_classes=len(names), pretrained=True)
        return Classifier(net.to(device).eval(), names, f"pretrained {name}")

    from emolib.models import list_models
    if name in list_models():
        raise ValueError(f"model {name!r} has no emotion-trained weights of its own: pass a checkpoint "
                         f"trained with it (a path, or a name in {paths.models_dir()}), or use "
                         f"{', '.join(repr(m) for m in emotion_models)}")
    if Path(name).suffix in paths.CHECKPOINT_SUFFIXES or os.sep in name:
        raise FileNotFoundError(f"checkpoint {name} does not exist (also looked in {paths.models_dir()})")
    raise ValueError(f"unknown model {name!r}: not a checkpoint file, not a checkpoint in "
                     f"{paths.models_dir()}, and not a pretrained emotion model "
                     f"({', '.join(emotion_models)})")


BACKENDS = ("auto", "torch", "onnx")


def resolve_backend(backend: str, model) -> str:
    """"torch" or "onnx" for `model`; "auto" picks onnx for an .onnx file and torch for the rest."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    is_onnx = isinstance(model, (str, os.PathLike)) and Path(model).suffix.lower() == ".onnx"
    if backend == "auto":
        return "onnx" if is_onnx else "torch"
    if backend == "onnx" and not is_onnx:
        raise ValueError(f"backend='onnx' runs an exported .onnx file, not {model!r}; write one with "
                         "`emolib export MODEL --onnx OUT.onnx`")
    if backend == "torch" and is_onnx:
        raise ValueError(f"{model}: an .onnx file runs with backend='onnx' (or 'auto')")
    return backend


def onnx_path(model: str | os.PathLike) -> Path:
    """An .onnx path as given, or found in `paths.models_dir()` when it is not a file here."""
    path = Path(model)
    if path.is_file() or path.is_absolute():
        return path
    return paths.models_dir() / path if (paths.models_dir() / path).is_file() else path
