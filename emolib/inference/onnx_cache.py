"""The default emotion model exported once for ONNX Runtime, which `EmotionRecognizer(backend="auto")` then runs on
the CPU (faster than PyTorch for one face; `make bench` measures it), with the same probabilities to 1e-4, checked
on real face crops before the file is written (emolib.inference.export). `emolib assets` (part of `make setup`) exports it.

Only the models listed in ONNX_MODELS: ONNX Runtime is not faster for every model (`make bench`). The file name
carries a fingerprint of what the export depends on, read from the registry without building the model: the
weights record's sha256, the spec and classes, the ONNX format version and the source of the architecture's
module. A file made before any of them changed is never used: PyTorch runs the model then, with the same outputs,
until `emolib assets` exports it again. The recognizer's ``source`` says which one runs.
"""
from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

from emolib.core import paths
from emolib.inference.classifier import DEFAULT_MODEL

ONNX_MODELS = (DEFAULT_MODEL,)


def folder() -> Path:
    return paths.cache_dir() / "onnx"


def fingerprint(name: str) -> str:
    """What an export of the pretrained model `name` depends on, from its registry entry alone."""
    from emolib.inference.onnx import FORMAT_VERSION
    from emolib.models import entry
    e = entry(name)
    w = e.weights
    spec = e.spec.with_framing(w.framing) if w.framing is not None else e.spec   # as `models.create` sets it
    h = hashlib.sha256()
    h.update(w.sha256.encode() + b"\0")
    h.update(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode() + b"\0")
    h.update("\0".join(w.classes).encode() + b"\0")
    h.update(f"format {FORMAT_VERSION}\0".encode())
    h.update(Path(inspect.getsourcefile(e.builder)).read_bytes())
    return h.hexdigest()[:16]


def path_for(name: str) -> Path:
    return folder() / f"{name}-{fingerprint(name)}.onnx"


def cached(name: str) -> Path | None:
    """The export of the pretrained model `name` when one was made from exactly what it is now, else None."""
    if name not in ONNX_MODELS:
        return None
    path = path_for(name)
    return path if path.is_file() else None


def build(name: str = DEFAULT_MODEL) -> Path:
    """Export `name` unless an up-to-date export exists; returns its path."""
    path = path_for(name)
    if not path.is_file():
        from emolib.inference.classifier import load_classifier
        from emolib.inference.export import export_onnx
        model, classes, source = load_classifier(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, classes, path, source=source)
    return path
