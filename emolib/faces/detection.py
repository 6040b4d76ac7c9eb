"""`detect(image, detector=...)`: one entry point for every face detector, plus the NMS helpers.

Each detector is a small class in its own module with ``__call__(image_bgr, min_score, nms_iou)
-> list[Face]``; it is built on first use and cached, so importing emolib.faces loads nothing.
"""
from __future__ import annotations

import importlib
import os
from functools import lru_cache

import cv2
import numpy as np

from emolib.faces.types import Face

# name -> (module, class, default min_score). Scores are on each detector's own scale.
DETECTORS: dict[str, tuple[str, str, float]] = {
    # Fast default, for faces that fill a good part of the frame. 0.65 rather than MediaPipe's 0.5:
    # measured here, uniform noise scores up to ~0.63 while upscaled LFW faces score >= 0.75 (5th pct).
    "blazeface": ("blazeface", "BlazeFace", 0.65),
    # Small faces (group photos, stills): MediaPipe's full-range model, plus a finer pass on large images.
    "blazeface_full": ("blazeface", "BlazeFaceFull", 0.6),
    "ssd": ("ssd", "SSDFace", 0.5),                    # OpenCV res10 SSD; slower, better on small faces
    "haar": ("haar", "HaarFace", 0.0),                 # Viola-Jones; score = cascade's last-stage weight
}
FALLBACKS = ("none", "whole", "center")
# Defaults by use (README "Face detection" gives the recall and speed behind them): a still photo gets
# the detector that finds small faces; a video frame the one that keeps the live budget and still finds
# a face at arm's length from the camera.
STILL_DETECTOR = "blazeface_full"
LIVE_DETECTOR = "blazeface"
# CPU threads by use, torch's and cv2's each (emolib.runtime.cpu_threads; `emolib --threads N` overrides). A video
# frame: 1, as its one face is too little work to split and on 2 cores spare threads stall the stages that run side
# by side (emolib.prefetch). A still photo: every core, which the detector's fine pass splits well (blazeface.py).
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
    module, cls, _ = DETECTORS[name]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(**params)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept BGR uint8 H×W×3 or gray H×W (or H×W×1); return BGR uint8 H×W×3."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
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
        min_score = DETECTORS[detector][2]
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


# ---------------------------------------------------------------------------- box helpers

def iou(a, b) -> np.ndarray:
    """IoU between boxes a (N×4 or 4) and b (M×4 or 4), x0,y0,x1,y1 -> N×M (or a scalar for two boxes)."""
    a2, b2 = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    lt = np.maximum(a2[:, None, :2], b2[None, :, :2])
    rb = np.minimum(a2[:, None, 2:], b2[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    out = inter / np.maximum(area(a2)[:, None] + area(b2)[None, :] - inter, 1e-12)
    return out[0, 0] if np.ndim(a) == 1 and np.ndim(b) == 1 else out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy (hard) non-maximum suppression, best score first.

    Plain numpy: OpenCV's NMSBoxes rejects negative scores, which the Haar cascade's weights can be.
    """
    order = list(np.argsort(-np.asarray(scores, float), kind="stable"))
    keep = []
    while order:
        best, order = order[0], order[1:]
        keep.append(best)
        if order:
            overlap = iou(boxes[best], boxes[order]).reshape(-1)
            order = [i for i, o in zip(order, overlap) if o <= iou_threshold]
    return np.asarray(keep, int)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float,
                 extra: np.ndarray | None = None):
    """MediaPipe's weighted NMS: each cluster (IoU > threshold with its best box) becomes the
    score-weighted mean of its boxes (and of `extra`, e.g. flattened keypoints), keeping the best score.

    Returns (boxes K×4, scores K, extra K×E or None). Averaging steadies boxes between frames.
    """
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    extra = None if extra is None else extra[order]
    out_b, out_s, out_e = [], [], []
    remaining = np.arange(len(boxes))
    while len(remaining):
        overlap = iou(boxes[remaining[0]], boxes[remaining]).reshape(-1) if len(remaining) > 1 else np.ones(1)
        cluster = remaining[overlap > iou_threshold]
        cluster = cluster if len(cluster) else remaining[:1]
        w = scores[cluster] / scores[cluster].sum()
        out_b.append(w @ boxes[cluster])
        out_s.append(scores[remaining[0]])
        if extra is not None:
            out_e.append(w @ extra[cluster])
        remaining = remaining[overlap <= iou_threshold]
    k = len(out_b)
    return (np.asarray(out_b).reshape(k, 4), np.asarray(out_s),
            None if extra is None else np.asarray(out_e).reshape(k, -1))
