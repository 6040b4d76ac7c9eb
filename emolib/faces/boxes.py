"""Box geometry shared by the detectors and the tracker: IoU, greedy NMS, MediaPipe's weighted NMS."""
from __future__ import annotations

import numpy as np


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
