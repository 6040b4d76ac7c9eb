"""OpenCV's res10 SSD face detector (Caffe, 300×300 input), through cv2.dnn."""
from __future__ import annotations

import cv2
import numpy as np

from emolib.core import assets
from emolib.faces.boxes import nms
from emolib.faces.types import Face


class SSDFace:
    name = "ssd"
    input_size = 300
    mean = (104.0, 177.0, 123.0)    # BGR means the model was trained with

    def __init__(self, prototxt: str = "deploy.prototxt",
                 weights: str = "res10_300x300_ssd_iter_140000.caffemodel"):
        self.net = cv2.dnn.readNetFromCaffe(str(assets.resolve(prototxt)), str(assets.resolve(weights)))

    def __call__(self, image_bgr: np.ndarray, min_score: float, nms_iou: float) -> list[Face]:
        h, w = image_bgr.shape[:2]
        s = self.input_size
        blob = cv2.dnn.blobFromImage(cv2.resize(image_bgr, (s, s)), 1.0, (s, s), self.mean)
        self.net.setInput(blob)
        out = self.net.forward().reshape(-1, 7)          # [image_id, class, score, x0, y0, x1, y1] (normalised)
        out = out[out[:, 2] >= min_score]
        boxes = np.clip(out[:, 3:7], 0.0, 1.0) * [w, h, w, h]
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores = boxes[ok], out[ok, 2]
        keep = nms(boxes, scores, nms_iou)
        return [Face(box=tuple(map(float, boxes[i])), score=float(scores[i]), detector=self.name) for i in keep]
