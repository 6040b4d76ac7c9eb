"""The one record every face detector returns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class Face:
    """A face in image pixels.

    box: (x0, y0, x1, y1) floats, exclusive right/bottom edge. score: the detector's confidence
    (its own scale: probability for ssd/blazeface, the cascade's last-stage weight for haar, 0.0
    for a fallback). keypoints: K×2 (x, y) image coordinates, eyes first, or None (BlazeFace gives
    six: right eye, left eye, nose tip, mouth, right and left ear tragion; "right" = the subject's).
    source: "detector" or "fallback". detector: the detector's name.
    """
    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = None
    source: str = "detector"
    detector: str = ""

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def __repr__(self) -> str:
        box = ", ".join(f"{v:.1f}" for v in self.box)
        kp = "" if self.keypoints is None else f", keypoints={len(self.keypoints)}"
        return f"Face(box=({box}), score={self.score:.3f}{kp}, source={self.source!r}, detector={self.detector!r})"
