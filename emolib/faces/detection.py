"""`detect(image, detector=...)`: one entry point for every face detector (the NMS helpers are in `boxes`).

Each detector is a small class in its own module with ``__call__(image_bgr, min_score, nms_iou)
-> list[Face]``; it is built on first use and cached, so importing emolib.faces loads nothing.
"""
from __future__ import annotations

import importlib
import os
from functools import lru_cache

import numpy as np

from emolib.faces.types import Face

# name -> ("module:class", default min_score). Scores are on each detector's own scale. The class is imported on
# first use (importing emolib.faces loads no model and no OpenCV); the detectors import nothing from here.
DETECTORS: dict[str, tuple[str, float]] = {
    # Fast default, for faces that fill a good part of the frame. 0.65 rather than MediaPipe's 0.5:
    # measured here, uniform noise scores up to ~0.63 while upscaled LFW faces score >= 0.75 (5th pct).
    "blazeface": ("emolib.faces.blazeface:BlazeFace", 0.65),
    # Small faces (group photos, stills): MediaPipe's full-range model, plus a finer pass on large images.
    "blazeface_full": ("emolib.faces.blazeface:BlazeFaceFull", 0.6),
    "ssd": ("emolib.faces.ssd:SSDFace", 0.5),            # OpenCV res10 SSD; slower, better on small faces
    "haar": ("emolib.faces.haar:HaarFace", 0.0),         # Viola-Jones; score = cascade's last-stage weight
}
FALLBACKS = ("none", "whole", "center")
# Defaults by use (docs/faces.md says why; docs/benchmarks.md has the recall and speed): a still photo gets
# the detector that finds small faces; a video frame the one that keeps the live budget and still finds
# a face at arm's length from the camera.
STILL_DETECTOR = "blazeface_full"
LIVE_DETECTOR = "blazeface"
# CPU threads by use, torch's and cv2's each (emolib.core.runtime.cpu_threads; `emolib --threads N` overrides). A video
# frame: 1, as its one face is too little work to split and on 2 cores spare threads stall the stages that run side
# by side (emolib.inference.prefetch). A still photo: every core, which the detector's fine pass splits well (blazeface.py).
LIVE_THREADS = 1


def still_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def list_detectors() -> list[str]:
    return list(DETECTORS)


@lru_cache(maxsize=None)
def get_detector(name: str, **params):
    """The detector object for `name`, built once per (name, params) and reused."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
    module, cls = DETECTORS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)(**params)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept BGR uint8 H×W×3 or gray H×W (or H×W×1); return BGR uint8 H×W×3."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        import cv2  # on use: `emolib --help` imports this module's tables without OpenCV
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a BGR H×W×3 or gray H×W image, got shape {image.shape}")


def detect(image: np.ndarray, detector: str = STILL_DETECTOR, *, min_score: float | None = None,
           min_size: float = 20, nms_iou: float = 0.3, fallback: str = "none") -> list[Face]:
    """Faces in `image` (BGR uint8 H×W×3 or gray H×W), best score first.

    min_score: drop faces below it (default: the detector's own, see DETECTORS).
    min_size: drop faces whose shorter box side is under this many pixels.
    nms_iou: overlapping boxes above this IoU are merged (blazeface, weighted as MediaPipe does)
    or suppressed (ssd, haar).
    fallback: when nothing is found, "whole" returns the whole image and "center" a centred square
    as one Face with source="fallback" and score 0.0; "none" returns [].
    """
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown fallback {fallback!r}; choose one of {', '.join(FALLBACKS)}")
    det = get_detector(detector)     # raises ValueError naming the detectors
    image = as_bgr(image)
    if min_score is None:
        min_score = DETECTORS[detector][1]
    faces = [f for f in det(image, min_score=min_score, nms_iou=nms_iou)
             if min(f.width, f.height) >= min_size]
    faces.sort(key=lambda f: f.score, reverse=True)
    if not faces and fallback != "none":
        faces = [fallback_face(image.shape[:2], fallback, detector)]
    return faces


def fallback_face(shape: tuple[int, int], mode: str, detector: str = "") -> Face:
    """The whole image, or the largest centred square, as a Face(source="fallback", score=0.0)."""
    h, w = shape[:2]
    if mode == "whole":
        box = (0.0, 0.0, float(w), float(h))
    elif mode == "center":
        side = min(w, h)
        x0, y0 = (w - side) / 2, (h - side) / 2
        box = (x0, y0, x0 + side, y0 + side)
    else:
        raise ValueError(f"unknown fallback {mode!r}; choose one of whole, center")
    return Face(box=box, score=0.0, keypoints=None, source="fallback", detector=detector)
