"""`EmotionRecognizer`: image in, one `FaceResult` per face out (detect → align → classify).

All faces of an image go through the classifier in one batch (with flip TTA the mirrored crops
join that same batch). Preprocessing is the model's own: faces are cropped at
``spec.input_size`` and fed through `emolib.models.preprocess.to_model_input`, the function training
and evaluation use. Class names come from the checkpoint (or, for the imported FER2013 model,
FER2013's order). Drawing lives in `emolib.inference.draw`, the video loop in `emolib.inference.video`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolib.core import paths
from emolib.core.labels import EMOJI, canonical
from emolib.core.runtime import resolve_device
from emolib.inference.classifier import DEFAULT_MODEL, load_classifier, onnx_path, resolve_backend


def emoji_for(label: str) -> str:
    try:
        return EMOJI[canonical(label)]
    except ValueError:               # a checkpoint with class names of its own (not an emotion of labels)
        return ""


def _cached_onnx(model) -> Path | None:
    """The up-to-date ONNX export of pretrained model `model` that `emolib assets` made (emolib.inference.onnx_cache), unless
    `model` names a checkpoint (which `load_classifier` would load first)."""
    from emolib.core import paths
    from emolib.inference import onnx_cache
    if not isinstance(model, str) or any(p.is_file() for p in paths.candidates(model)):
        return None
    return onnx_cache.cached(model)


@dataclass
class FaceResult:
    """One face: where it is, what the classifier thinks, and how sure it is.

    box: (x0, y0, x1, y1) image pixels. detector_score: the detector's confidence (0.0 for a
    fallback region). probs: class -> probability, in the model's class order. label/confidence:
    the most probable class and its probability; top3: the three best (label, p). emoji: the
    label's Unicode emoji. from_fallback: no face was detected and `box` is the fallback region.
    keypoints: K×2 detector keypoints or None. track_id: set by the video tracker.
    """
    box: tuple[float, float, float, float]
    detector_score: float
    probs: dict[str, float]
    label: str
    confidence: float
    top3: list[tuple[str, float]]
    emoji: str
    from_fallback: bool = False
    keypoints: np.ndarray | None = None
    track_id: int | None = None

    @classmethod
    def from_probs(cls, face, probs: dict[str, float]) -> "FaceResult":
        """A result for a detected `face` (emolib.faces.Face) and its class probabilities."""
        return cls(box=tuple(float(v) for v in face.box), detector_score=float(face.score),
                   from_fallback=face.source == "fallback", keypoints=face.keypoints,
                   **_decision(probs))

    def with_probs(self, probs: dict[str, float]) -> "FaceResult":
        """The same face with other probabilities (e.g. smoothed over video frames)."""
        return replace(self, **_decision(probs))

    def to_dict(self) -> dict:
        """Plain JSON-able data (keypoints as nested lists)."""
        return {
            "box": [round(v, 1) for v in self.box], "detector_score": round(self.detector_score, 4),
            "label": self.label, "confidence": round(self.confidence, 4),
            "top3": [[c, round(p, 4)] for c, p in self.top3],
            "probs": {c: round(p, 4) for c, p in self.probs.items()},
            "emoji": self.emoji, "from_fallback": self.from_fallback,
            "keypoints": None if self.keypoints is None else np.round(np.asarray(self.keypoints, np.float64), 1).tolist(),
            "track_id": self.track_id,
        }


def _decision(probs: dict[str, float]) -> dict:
    probs = {c: float(p) for c, p in probs.items()}
    ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    label, confidence = ranked[0]
    return {"probs": probs, "label": label, "confidence": confidence, "top3": ranked[:3],
            "emoji": emoji_for(label)}


class EmotionRecognizer:
    """Detect faces, crop and align them, classify their emotion.

    model: "fer2013-mini-xception" (pretrained, offline), a checkpoint path or name, or a module.
    detector: "blazeface_full" | "blazeface" | "ssd" | "haar" (emolib.faces; default None: the still-photo
    detector, `faces.STILL_DETECTOR`; `live()` builds one with `faces.LIVE_DETECTOR`). fallback: "none" | "whole" | "center":
    what to classify when no face is found (results then have from_fallback=True).
    tta_flip: average the softmax of each crop and its mirror image. min_score: detector threshold
    (None: the detector's default). framing: how faces are cut out (default: the model's own,
    ``model.spec.framing``, which its checkpoint records; pass one only to experiment).
    optimize: classify with `emolib.models.inference.prepare_for_inference`'s copy of the model
    (BatchNorm folded, channels-last: same outputs, faster; `make bench` measures by how much).
    crop_size: side of the face crop before `to_model_input` resizes it to the model's input
    (default: the model's input size; 48 reproduces the look of 48 px training data exactly).
    backend: "torch", "onnx" (an `emolib export` file run by ONNX Runtime on the CPU; spec and
    classes from its metadata) or "auto": onnx for an .onnx file, and on the CPU for a pretrained model
    that `emolib assets` exported (emolib.inference.onnx_cache: the default model, same outputs); else torch.
    ``backend`` and ``source`` say which runs.
    """

    def __init__(self, model: str | os.PathLike | nn.Module = DEFAULT_MODEL, detector: str | None = None, *,
                 fallback: str = "none", tta_flip: bool = False, device: str = "cpu",
                 min_score: float | None = None, framing=None, classes=None, optimize: bool = True,
                 crop_size: int | None = None, backend: str = "auto"):
        from emolib.faces.detection import DETECTORS, FALLBACKS, STILL_DETECTOR
        detector = STILL_DETECTOR if detector is None else detector
        if detector not in DETECTORS:
            raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        if fallback not in FALLBACKS:
            raise ValueError(f"unknown fallback {fallback!r}; choose one of {', '.join(FALLBACKS)}")
        device = resolve_device(device)          # "auto" | "cpu" | "cuda[:i]"
        self.backend = resolve_backend(backend, model)
        cached_onnx = _cached_onnx(model) if backend == "auto" and device.type == "cpu" and classes is None else None
        if self.backend == "onnx" or cached_onnx:   # an `emolib export` file: spec and classes from its metadata
            from emolib.inference.onnx import OnnxClassifier
            self.model, self.backend = OnnxClassifier(cached_onnx or onnx_path(model)), "onnx"
            self.classes, self.source = self.model.classes, f"onnx {self.model.path}"
            if cached_onnx:      # the pretrained model's own export (`make setup`): no torch model is built
                self.source = f"pretrained {model} (ONNX Runtime: {paths.shown(cached_onnx)})"
        else:
            self.model, self.classes, self.source = load_classifier(model, device, classes)
        if optimize and self.backend == "torch":   # a copy: a module passed in stays as it was
            from emolib.models.inference import prepare_for_inference
            self.model = prepare_for_inference(self.model)
        self.spec = self.model.spec
        self.detector, self.fallback, self.tta_flip = detector, fallback, tta_flip
        self.device, self.min_score = device, min_score
        self.framing = framing if framing is not None else self.spec.framing
        self.crop_size = int(crop_size or self.spec.input_size)

    @classmethod
    def live(cls, model: str | os.PathLike | nn.Module = DEFAULT_MODEL, **kwargs) -> "EmotionRecognizer":
        """A recognizer for video frames: the live detector (`faces.LIVE_DETECTOR`) unless `detector=` says."""
        from emolib.faces.detection import LIVE_DETECTOR
        return cls(model, **{"detector": LIVE_DETECTOR, **kwargs})

    def __repr__(self) -> str:
        return (f"EmotionRecognizer(model={self.source!r}, detector={self.detector!r}, classes={len(self.classes)}, "
                f"input={self.spec.input_size}px×{self.spec.channels}, fallback={self.fallback!r}, "
                f"tta_flip={self.tta_flip})")

    def warmup(self) -> "EmotionRecognizer":
        """Build the detector and run the classifier once, so the first real frame is not slow."""
        from emolib.faces.detection import get_detector
        get_detector(self.detector)
        self.predict_crops(np.zeros((1, self.crop_size, self.crop_size), np.uint8))
        return self

    # The three steps, public so the video loop can reuse tracked boxes between detections.
    def detect_faces(self, image_bgr: np.ndarray) -> list:
        from emolib.faces import detect
        return detect(image_bgr, self.detector, min_score=self.min_score, fallback=self.fallback)

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities (N, C) for uint8 gray face crops (N, H, W), in ONE forward pass."""
        from emolib.models.preprocess import to_model_input
        if len(crops) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = to_model_input(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device), self.spec)
        n = x.shape[0]
        if self.tta_flip:
            x = torch.cat([x, x.flip(-1)])
        if self.backend == "onnx":
            probs = torch.from_numpy(self.model.probs(x.cpu().numpy()))
        else:
            x = x.contiguous(memory_format=torch.channels_last)     # the prepared model's fast layout
            probs = torch.softmax(self.model(x).float(), dim=1)
        if self.tta_flip:
            probs = (probs[:n] + probs[n:]) / 2
        return probs.cpu().numpy()

    def classify_faces(self, image_bgr: np.ndarray, faces: list) -> list[FaceResult]:
        """A FaceResult per face (same order); every face is classified in one batch."""
        if not faces:
            return []
        return self.face_results(faces, self.predict_crops(self.face_crops(image_bgr, faces)))

    # classify_faces in two halves, for a caller that batches the crops of several images
    # (emolib.inference.batch): the crops as predict_crops takes them, and the results of their probabilities.
    def face_crops(self, image_bgr: np.ndarray, faces: list) -> np.ndarray:
        """uint8 gray crops (N, S, S) of `faces`, cut with the model's framing at `crop_size`."""
        from emolib.faces.align import crop_faces
        return crop_faces(image_bgr, faces, size=self.crop_size, framing=self.framing)

    def face_results(self, faces: list, probs: np.ndarray) -> list[FaceResult]:
        """A FaceResult per face from its row of `probs` (predict_crops' output for face_crops(image, faces))."""
        if len(faces) and probs.shape[1] != len(self.classes):
            raise RuntimeError(f"the model outputs {probs.shape[1]} classes but has {len(self.classes)} names")
        return [FaceResult.from_probs(f, dict(zip(self.classes, p.tolist()))) for f, p in zip(faces, probs)]

    def recognize(self, image_bgr: np.ndarray) -> list[FaceResult]:
        """Every face in a BGR uint8 image (gray H×W accepted), best detector score first."""
        from emolib.faces.detection import as_bgr
        image_bgr = as_bgr(image_bgr)
        return self.classify_faces(image_bgr, self.detect_faces(image_bgr))

    def recognize_path(self, path: str | os.PathLike) -> list[FaceResult]:
        """recognize() on an image file (EXIF orientation, gray, RGBA, 16-bit, CMYK handled).

        Raises emolib.core.images.ImageReadError naming the file when it is not a readable image.
        """
        from emolib.core.images import read_image
        return self.recognize(read_image(path))
