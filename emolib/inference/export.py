"""ONNX export of any emolib emotion model, written only after a parity check against PyTorch.

`export_onnx(model, classes, out)` traces the model with torch.onnx (the torch.export-based exporter)
with a dynamic batch dimension, stores what a reader needs as ONNX metadata_props (the whole ModelSpec,
serialized generically so every field a spec gains travels too, the class names, the model name and
keywords, where it came from, the emolib version), then runs the file with ONNX Runtime (CPU) and
PyTorch on real face crops (`parity_crops`). Only when the probabilities agree within `tolerance` and
the top-1 label is the same on every crop is the file moved into place; otherwise `ExportError`.

The graph takes what `emolib.models.preprocess.to_model_input` produces (float32 N×C×S×S) and returns
``logits`` and ``probs``; `emolib.inference.onnx` reads the file back for `EmotionRecognizer`.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolib.core.atomic import copy_file
from emolib.core.errors import EmolibError
from emolib.core.provenance import __version__, git_commit
from emolib.inference.onnx import FORMAT, FORMAT_VERSION, INPUT, OUTPUTS, OnnxClassifier

if TYPE_CHECKING:            # torch loads when an export runs, so `emolib --help` stays instant
    from torch import nn

TOLERANCE = 1e-4          # max |p_onnx - p_torch| over every class of every crop
OPSET = 18


class ExportError(EmolibError, RuntimeError):
    """The export failed, or the exported file does not match the PyTorch model."""


@dataclass
class Parity:
    crops: int
    max_abs_prob_diff: float
    top1_disagreements: int
    batch_sizes: list[int] = field(default_factory=list)

    def ok(self, tolerance: float) -> bool:
        return self.max_abs_prob_diff <= tolerance and self.top1_disagreements == 0


# ----------------------------------------------------------------------------------- crops
def parity_crops(size: int, n_lfw: int = 100) -> np.ndarray:
    """Real face crops, uint8 gray (N, size, size): the astronaut (skimage.data) as the recognizer
    crops her (BlazeFace, then `crop_faces`), and the first `n_lfw` faces of skimage's LFW subset
    (tight 25×25 face crops, resized). Both ship with scikit-image: no download."""
    import cv2
    from skimage import data

    from emolib.faces import detect
    from emolib.faces.align import crop_faces

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    crops = list(crop_faces(astronaut, detect(astronaut, "blazeface")[:1], size=size))
    for face in data.lfw_subset()[:n_lfw]:           # the first 100 are faces, the rest are not
        gray = (face * 255).round().astype(np.uint8)
        crops.append(cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA if size < 25 else cv2.INTER_LINEAR))
    return np.stack(crops)


# ------------------------------------------------------------------------------- metadata
def metadata(model: "nn.Module", classes, source: str) -> dict[str, str]:
    """The metadata_props of an export: every value a string (JSON where it is structured)."""
    from emolib.models.checkpoint import to_plain
    spec = model.spec
    return {
        "emolib.format": FORMAT,
        "emolib.format_version": str(FORMAT_VERSION),
        "emolib.model_name": str(getattr(model, "model_name", type(model).__name__)),
        "emolib.model_kwargs": json.dumps(to_plain(dict(getattr(model, "model_kwargs", {})), "model_kwargs")),
        "emolib.spec": json.dumps(to_plain(spec.to_dict(), "spec")),
        "emolib.classes": json.dumps(list(classes)),
        "emolib.source": source,
        "emolib.version": __version__,
        "emolib.git_commit": git_commit() or "",
        "emolib.input": (f"{INPUT}: float32 N×{spec.channels}×{spec.input_size}×{spec.input_size}; gray face crops "
                         f"scaled to [0, 1], resized, repeated to {spec.channels} channel(s), (x - mean) / std "
                         f"with mean {list(spec.mean)} and std {list(spec.std)}"),
        "emolib.outputs": "logits, probs: float32 N×classes, in the order of emolib.classes",
    }


# --------------------------------------------------------------------------------- export
def _probabilities(model: "nn.Module") -> "nn.Module":
    """The exported graph: logits and their softmax, so a reader needs no post-processing."""
    import torch

    class Probabilities(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input: torch.Tensor):  # noqa: A002 - the graph input's name
            logits = self.model(input)
            return logits, torch.softmax(logits, dim=1)

    return Probabilities().eval()


def _trace(model: "nn.Module", path: Path) -> None:
    import torch

    from emolib.core.quiet import collected_warnings
    spec = model.spec
    example = torch.zeros(2, spec.channels, spec.input_size, spec.input_size)
    batch = torch.export.Dim("batch", min=1, max=65536)
    # The exporter's UserWarnings are about its internals (decompositions, opset choices), not the model.
    with collected_warnings(), torch.no_grad():
        program = torch.onnx.export(_probabilities(model), (example,), input_names=[INPUT],
                                    output_names=list(OUTPUTS), dynamic_shapes={"input": {0: batch}},
                                    opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def _write_metadata(path: Path, props: dict[str, str], doc: str) -> None:
    import onnx
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def check_parity(model: "nn.Module", onnx_path: Path, crops: np.ndarray, tolerance: float = TOLERANCE,
                 batch_size: int = 32) -> Parity:
    """Probabilities of `model` (PyTorch, eval) and of the ONNX file on the same crops.

    The ONNX file runs at batch 1 on the first crop and at `batch_size` on the rest, which checks
    the dynamic batch dimension at both ends."""
    import torch

    from emolib.models.preprocess import to_model_input

    onnx_model = OnnxClassifier(onnx_path)
    x = to_model_input(torch.from_numpy(np.ascontiguousarray(crops)), model.spec)
    with torch.inference_mode():
        want = torch.cat([torch.softmax(model(x[i:i + batch_size]).float(), 1)
                          for i in range(0, len(x), batch_size)]).numpy()
    bounds = [(0, 1)] + [(i, min(i + batch_size, len(x))) for i in range(1, len(x), batch_size)]
    got = np.concatenate([onnx_model.probs(x[a:b].numpy()) for a, b in bounds])
    return Parity(crops=len(x), max_abs_prob_diff=float(np.abs(got - want).max()),
                  top1_disagreements=int((got.argmax(1) != want.argmax(1)).sum()),
                  batch_sizes=sorted({b - a for a, b in bounds}))


def export_onnx(model: "nn.Module", classes, out: str | os.PathLike, *, source: str = "",
                crops: np.ndarray | None = None, tolerance: float = TOLERANCE) -> Parity:
    """Export `model` (an emolib model with ``.spec``; its outputs in the order of `classes`) to `out`.

    `crops`: uint8 gray face crops for the parity check (default `parity_crops` at the model's input size).
    Raises ExportError, leaving nothing at `out`, when the export fails or parity does not hold.
    """
    if not hasattr(model, "spec"):
        raise ExportError("the model has no .spec: build it with emolib.models.create or load a checkpoint")
    classes = [str(c) for c in classes]
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ExportError(f"{out}: the output file name must end in .onnx")
    was_training = model.training
    model.eval()
    try:
        # Built and checked in a scratch folder; only a file that passed reaches `out` (atomically).
        with tempfile.TemporaryDirectory(prefix="emolib-export-") as scratch:
            tmp = Path(scratch) / out.name
            try:
                _trace(model, tmp)
            except ExportError:
                raise
            except Exception as exc:  # noqa: BLE001 - the exporter raises many types
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                raise ExportError(f"torch.onnx could not export {getattr(model, 'model_name', 'the model')}: "
                                  f"{type(exc).__name__}: {first}") from exc
            props = metadata(model, classes, source)
            _write_metadata(tmp, props, f"emolib {props['emolib.model_name']} emotion classifier: "
                                        f"{', '.join(classes)}. {props['emolib.input']}")
            if crops is None:
                crops = parity_crops(model.spec.input_size)
            parity = check_parity(model, tmp, crops, tolerance)
            if not parity.ok(tolerance):
                raise ExportError(f"ONNX Runtime disagrees with PyTorch on {parity.crops} face crops: max |Δp| = "
                                  f"{parity.max_abs_prob_diff:.2e} (tolerance {tolerance:.0e}), top-1 differs on "
                                  f"{parity.top1_disagreements}; nothing was written to {out}")
            copy_file(tmp, out)
    finally:
        model.train(was_training)
    return parity
