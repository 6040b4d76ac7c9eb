"""The default emotion model exported once for ONNX Runtime, which `EmotionRecognizer(backend="auto")` then runs on
the CPU: about 4× PyTorch's speed for one face and 1.4× for 64 (`make bench`), with the same probabilities to 1e-4,
checked on real face crops before the file is written (emolib.export). `make setup` exports it
(`python -m emolib.onnx_cache`).

Only the models listed in ONNX_MODELS: ONNX Runtime is not faster for all (vit_small_48: 0.7× at batch 64). The
file name carries a fingerprint of what the export depends on (the weights, the spec and classes, the code of
the model and of the exporter, torch's version), so a file made before any of them changed is never used:
PyTorch runs the model then, with the same outputs, until `make setup` exports it again. The recognizer's
``source`` says which one runs.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from emolib import paths
from emolib.recognizer import DEFAULT_MODEL

ONNX_MODELS = (DEFAULT_MODEL,)


def folder() -> Path:
    return paths.cache_dir() / "onnx"


def fingerprint(model, classes) -> str:
    import torch

    from emolib import export
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode() + b"\0" + value.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(model.spec.to_dict(), sort_keys=True, default=str).encode())
    h.update("\0".join(map(str, classes)).encode())
    for module in (sys.modules[type(model).__module__], export):
        h.update(Path(module.__file__).read_bytes())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:16]


def path_for(name: str, model, classes) -> Path:
    return folder() / f"{name}-{fingerprint(model, classes)}.onnx"


def cached(name: str, model, classes) -> Path | None:
    """The export of `model` (loaded as `name`) when one was made from exactly this model, else None."""
    if name not in ONNX_MODELS:
        return None
    path = path_for(name, model, classes)
    return path if path.is_file() else None


def build(name: str = DEFAULT_MODEL) -> Path:
    """Export `name` unless an up-to-date export exists; returns its path."""
    from emolib.export import export_onnx
    from emolib.recognizer import load_classifier
    model, classes, source = load_classifier(name)
    path = path_for(name, model, classes)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, classes, path, source=source)
    return path


if __name__ == "__main__":      # `make setup`
    for model_name in ONNX_MODELS:
        print(f"{model_name} for ONNX Runtime: {build(model_name)}")
