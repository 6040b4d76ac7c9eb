"""MediaPipe BlazeFace (short range 128×128, full range 192×192 TFLite), run by LiteRT or cv2.dnn
(emolib.faces.tflite); anchors and decoding are ours.

- short range ("blazeface"): selfie distance, faces that fill a good part of the frame (roughly > 1/10 of
  the image's longer side after letterboxing to a square). Fast: the live default.
- full range ("blazeface_full"): faces down to ~1/30 of the longer side (group photos, a room seen from a
  few metres); for still photos larger than its input, `tiles` runs it on a grid of overlapping views
  too, so faces of ~30 px in a 2-megapixel photo are found.

References: MediaPipe face_detection.pbtxt (SsdAnchorsCalculator, TensorsToDetectionsCalculator and
NonMaxSuppressionCalculator options), face_detection_short_range.pbtxt / face_detection_full_range.pbtxt
(the per-model overrides) and face-detection-tflite (fdlite) decoding.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .. import assets
from .detection import weighted_nms
from .tflite import NetPool
from .types import Face

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
ANCHOR_OPTIONS = SHORT_RANGE.anchors          # the short-range layout (tests, and the old import path)


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
    small = cv2.resize(part, (dw, dh), interpolation=cv2.INTER_AREA if dw < part.shape[1] else cv2.INTER_LINEAR)
    square = np.zeros((n, n, 3), np.uint8)
    square[dy0:dy0 + dh, dx0:dx0 + dw] = small
    # Exact map for the resized part: input px -> image px.
    gx, gy = (ix1 - ix0) / dw, (iy1 - iy0) / dh
    return square, np.array([gx, gy], np.float32), np.array([ix0 - dx0 * gx, iy0 - dy0 * gy], np.float32)


@lru_cache(maxsize=None)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="emolib-blazeface")


def tile_views(w: int, h: int, n: int, tiles: int) -> list[tuple[int, int, int]]:
    """(x0, y0, side) square views: the whole image (letterboxed), plus, when `tiles` > 1 and the image's
    longer side is over twice the input, a grid of squares of 1/`tiles` of it with ~1/3 overlap, so a
    small face is seen at up to `tiles`× the resolution and a face cut by one tile's edge is whole in a
    neighbour. The short side gets fewer tiles (a 3:2 photo: 3×2)."""
    long_side = max(w, h)
    views = [((w - long_side) // 2, (h - long_side) // 2, long_side)]
    if tiles <= 1 or long_side <= 2 * n:
        return views
    side = int(np.ceil(long_side / tiles * 1.5))

    def starts(length):
        if length <= side:
            return [(length - side) // 2]
        k = int(np.ceil((length - side) / (side * 2 / 3))) + 1      # steps of at most 2/3 of a tile
        return [round(i * (length - side) / (k - 1)) for i in range(k)]
    views += [(x0, y0, side) for y0 in starts(h) for x0 in starts(w)]
    return views


def inner_edge(boxes: np.ndarray, view, w: int, h: int, slack: float = 2.0) -> np.ndarray:
    """Boxes touching an edge of the view that lies inside the image: a face cut by a tile border, which
    the neighbouring tile (or the whole view) sees whole."""
    x0, y0, side = view
    cut = np.zeros(len(boxes), bool)
    if x0 > 0:
        cut |= boxes[:, 0] <= x0 + slack
    if y0 > 0:
        cut |= boxes[:, 1] <= y0 + slack
    if x0 + side < w:
        cut |= boxes[:, 2] >= x0 + side - slack
    if y0 + side < h:
        cut |= boxes[:, 3] >= y0 + side - slack
    return cut


class BlazeFace:
    """Short-range BlazeFace: one letterboxed 128×128 pass."""
    name = "blazeface"
    model = SHORT_RANGE

    def __init__(self, tiles: int = 1, runtime: str | None = None):
        outputs = [self.model.scores_output, self.model.boxes_output]
        self._pools = {1: NetPool(str(assets.resolve(self.model.filename)), outputs, runtime)}
        self.nets = self._pools[1]                    # single-threaded instances, one per view run side by side
        self.runtime = self.nets.runtime              # "litert" or "opencv" (emolib.faces.tflite)
        self.size = self.model.anchors["input_size"]
        self.anchors = ssd_anchors(**self.model.anchors)
        self.tiles = tiles

    def _nets(self, threads: int) -> NetPool:
        """The instances that run on `threads` threads each (made on first use)."""
        if threads not in self._pools:
            self._pools[threads] = NetPool(self.nets.path, self.nets.outputs, self.runtime, threads)
        return self._pools[threads]

    def _run(self, image_bgr: np.ndarray, view, scale=(1.0, 1.0), *, min_score: float, threads: int = 1):
        """Scores, boxes, keypoints above min_score for one square view of `image_bgr`, in its pixels times
        `scale` (x, y): the original photo's pixels when `image_bgr` is a shrunk copy of it."""
        n = self.size
        square, gain, offset = letterbox(image_bgr, *view, n)
        raw_scores, raw_boxes = self._nets(threads)(square)
        logits = np.clip(raw_scores.reshape(-1), -SCORE_CLIP, SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))   # float64: exp(100) overflows float32
        ok = scores >= min_score
        boxes, keypoints = decode(raw_boxes.reshape(-1, 16)[ok], self.anchors[ok], float(n))
        boxes = (boxes.reshape(-1, 2, 2) * n * gain + offset).reshape(-1, 4)
        keypoints = keypoints * n * gain + offset
        keep = ~inner_edge(boxes, view, image_bgr.shape[1], image_bgr.shape[0])
        sx, sy = scale
        return scores[ok][keep], boxes[keep] * [sx, sy, sx, sy], keypoints[keep] * [sx, sy]

    def __call__(self, image_bgr: np.ndarray, min_score: float, nms_iou: float) -> list[Face]:
        h, w = image_bgr.shape[:2]
        views = tile_views(w, h, self.size, self.tiles)
        jobs = [(image_bgr, views[0], (1.0, 1.0))]
        if len(views) > 1:
            # The tiles share one scale: the photo is shrunk to it once (area averaging), each tile is a crop of
            # that copy and the whole view a 2× reduction of it, instead of one resize of the photo per view
            # (a 1280×886 photo's 7 letterboxes: 7.9 ms, now 3.0).
            k = self.size / views[1][2]
            small = cv2.resize(image_bgr, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
            scale = (w / small.shape[1], h / small.shape[0])
            jobs = [(small, tuple(round(v * k) for v in view), scale) for view in views]
        found = self._run_all(jobs, min_score)
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


    def _run_all(self, jobs: list, min_score: float) -> list:
        """`_run` on every (image, view, scale) job, on as many threads as cv2 has (so `--threads` stays the
        budget). A tiled still's views are independent: they run side by side, one single-threaded network
        instance each (measured on 2 cores with cv2.dnn, 7 views of a 1280×886 photo: 31 ms against 47 ms one
        after another with cv2's 2 threads inside each). The last round, when fewer views than threads are left
        (or a single view), shares the threads out instead of leaving some idle: with LiteRT on 2 cores one
        view takes 1.8 ms on 2 threads against 2.8 on one."""
        threads = max(1, cv2.getNumThreads())
        even = len(jobs) - len(jobs) % threads         # whole rounds of one view per thread
        found = []
        for part, side_by_side in ((jobs[:even], threads), (jobs[even:], len(jobs) - even)):
            if part:
                per_net = threads // side_by_side
                self._nets(per_net).reserve(side_by_side)
                run = lambda job: self._run(*job, min_score=min_score, threads=per_net)  # noqa: E731
                found += map(run, part) if side_by_side == 1 else _pool(side_by_side).map(run, part)
        return found


class BlazeFaceFull(BlazeFace):
    """Full-range BlazeFace: the letterboxed 192×192 pass, plus a grid of tiles on large stills."""
    name = "blazeface_full"
    model = FULL_RANGE

    def __init__(self, tiles: int = 3, runtime: str | None = None):
        super().__init__(tiles, runtime)
