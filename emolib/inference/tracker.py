"""Face tracks across video frames: ids by box overlap, and per-track probability smoothing.

`IoUTracker.update` matches this frame's boxes to the live tracks by IoU (`emolib.faces.iou`, one
boxes×tracks matrix) with the Hungarian algorithm (scipy's `linear_sum_assignment`), so two faces
crossing never swap ids greedily; `smooth` keeps an exponential moving average of each track's class
probabilities, so a label does not flicker from frame to frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from emolib.faces import iou as box_iou

__all__ = ["IoUTracker", "Track"]


@dataclass
class Track:
    track_id: int
    box: tuple[float, float, float, float]
    face: object = None                  # the last Face seen, reused between detections
    probs: np.ndarray | None = None      # smoothed class probabilities
    missed: int = 0                      # consecutive frames without a matching box
    hits: int = 1


class IoUTracker:
    """Track ids by box overlap with the previous frame (Hungarian matching on IoU).

    A box matches a live track when their IoU is at least `iou_threshold`; unmatched boxes start
    new tracks; a track unmatched for more than `max_missed` consecutive frames is dropped.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self.next_id = 0

    def update(self, boxes: Sequence[Sequence[float]], faces: Sequence | None = None) -> list[int]:
        """Assign a track id to each box of this frame (same order); age the unmatched tracks."""
        boxes = [tuple(float(v) for v in b) for b in boxes]
        faces = list(faces) if faces is not None else [None] * len(boxes)
        live = list(self.tracks.values())
        ids: list[int | None] = [None] * len(boxes)
        if live and boxes:
            iou = box_iou(np.array(boxes), np.array([t.box for t in live]))    # (boxes, tracks)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= self.iou_threshold:
                    t = live[c]
                    t.box, t.face, t.missed, t.hits = boxes[r], faces[r], 0, t.hits + 1
                    ids[r] = t.track_id
        matched = {i for i in ids if i is not None}
        for t in live:
            if t.track_id not in matched:
                t.missed += 1
                if t.missed > self.max_missed:
                    del self.tracks[t.track_id]
        for i, b in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self.next_id
                self.tracks[self.next_id] = Track(self.next_id, b, faces[i])
                self.next_id += 1
        return ids  # type: ignore[return-value]

    def seen_last_frame(self) -> list[Track]:
        """Tracks matched on the most recent update (their boxes stand in between detections)."""
        return [t for t in self.tracks.values() if t.missed == 0]

    def smooth(self, track_id: int, probs: np.ndarray, smooth: float) -> np.ndarray:
        """Exponential moving average of a track's probabilities: smooth * previous + (1 - smooth) * new."""
        t = self.tracks[track_id]
        probs = np.asarray(probs, dtype=np.float64)
        if t.probs is None or smooth <= 0 or t.probs.shape != probs.shape:
            t.probs = probs
        else:
            t.probs = smooth * t.probs + (1.0 - smooth) * probs
        return t.probs
