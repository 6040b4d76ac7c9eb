"""OpenCV's Viola-Jones frontal-face cascade. No weights to fetch: the XML ships with opencv-python."""
from __future__ import annotations

import cv2
import numpy as np

from emolib.faces.boxes import nms
from emolib.faces.types import Face


class HaarFace:
    """Score = the cascade's last-stage level weight (detectMultiScale3 with outputRejectLevels):
    unbounded, roughly 0..10, higher is surer. The default threshold 0.0 keeps every detection the
    cascade groups with `min_neighbors` neighbours; raise it to trade recall for precision."""
    name = "haar"

    def __init__(self, cascade: str = "haarcascade_frontalface_default.xml", scale_factor: float = 1.1,
                 min_neighbors: int = 5, min_size: int = 20):
        path = cv2.data.haarcascades + cascade
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def __call__(self, image_bgr: np.ndarray, min_score: float, nms_iou: float) -> list[Face]:
        # Histogram equalisation makes the cascade far less sensitive to exposure.
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        rects, _levels, weights = self.cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        if len(rects) == 0:
            return []
        rects = np.asarray(rects, float).reshape(-1, 4)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
        scores = np.asarray(weights, float).reshape(-1)
        ok = scores >= min_score
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, nms_iou)
        return [Face(box=tuple(map(float, boxes[i])), score=float(scores[i]), detector=self.name) for i in keep]
