"""Run an `emolib export` ONNX file with ONNX Runtime (CPU): the recognizer's `backend="onnx"`.

Everything the recognizer needs comes from the file's metadata_props (written by `emolib.inference.export`):
the ModelSpec (input size, channels, mean/std, and whatever else a spec carries) and the class names.
A file that is not ONNX, or an ONNX model that emolib did not export, is an `OnnxModelError` that
says so, never a guess at its preprocessing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from emolib.core.errors import EmolibError

# The file format `emolib.inference.export` writes: its reader defines it.
FORMAT = "emolib-onnx"
FORMAT_VERSION = 1
INPUT = "input"
OUTPUTS = ("logits", "probs")

REQUIRED = ("emolib.format", "emolib.format_version", "emolib.spec", "emolib.classes", "emolib.model_name")


class OnnxModelError(EmolibError, ValueError):
    """An ONNX file emolib cannot use: unreadable, not an emolib export, or lacking its metadata."""


class OnnxClassifier:
    """An exported emotion classifier: ``.spec``, ``.classes``, ``.model_name``, ``probs(x)``.

    threads: ONNX Runtime's intra-op threads (default: torch's current setting, so `emolib --threads`
    governs both backends alike).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        from emolib.core.spec import ModelSpec

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model {self.path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3            # errors only: ORT's warnings are about its own graph passes
        if threads is None:
            import torch
            threads = torch.get_num_threads()
        options.intra_op_num_threads, options.inter_op_num_threads = int(threads), 1
        # ONNX Runtime's idle threads spin for a while after each run; here the detector and the decoder run next
        # and lost that time (a group photo is faster without spinning: docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own types (InvalidProtobuf, Fail, ...)
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise OnnxModelError(f"{self.path} is not a readable ONNX model ({reason})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("emolib.format") != FORMAT:
            raise OnnxModelError(f"{self.path} is an ONNX model but not an emolib export (its metadata has no "
                                 f"emolib.format = {FORMAT}), so its classes and preprocessing are unknown; "
                                 "export models with `emolib export`")
        if missing := [k for k in REQUIRED if k not in meta]:
            raise OnnxModelError(f"{self.path}: emolib ONNX metadata lacks {', '.join(missing)}")
        if int(meta["emolib.format_version"]) > FORMAT_VERSION:
            raise OnnxModelError(f"{self.path}: emolib ONNX format {meta['emolib.format_version']} is newer than "
                                 f"this emolib understands ({FORMAT_VERSION})")
        try:
            self.spec = ModelSpec.from_dict(json.loads(meta["emolib.spec"]))
            self.classes = tuple(json.loads(meta["emolib.classes"]))
        except (ValueError, TypeError) as exc:
            raise OnnxModelError(f"{self.path}: its emolib.spec / emolib.classes metadata is unusable ({exc})") from None
        self.model_name = meta["emolib.model_name"]
        self.metadata = dict(meta)
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != [INPUT] or "probs" not in outputs:
            raise OnnxModelError(f"{self.path}: expected input {INPUT!r} and output 'probs', found {inputs} -> {outputs}")

    def __repr__(self) -> str:
        return f"OnnxClassifier({str(self.path)!r}, model={self.model_name!r}, classes={len(self.classes)})"

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) float32 for preprocessed input (N, C, S, S) float32."""
        (p,) = self.session.run(["probs"], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})
        return p
