"""Real photos available offline, with hand-measured reference face boxes (x0, y0, x1, y1) in pixels.

Sources: scikit-image's bundled data (astronaut, lfw_subset: no download) and Debian's opencv-doc
(messi5.jpg; installed by .ci/run where apt-get exists, tests skip with a reason otherwise).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emolib.core import paths

# skimage.data.astronaut() (512×512): drawn on a 4× zoom with a 10 px grid and read off by eye —
# cheek edges at eye level x≈180 / x≈272, hairline y≈72, chin y≈174. Eyes at about (205, 100) and (249, 107).
ASTRONAUT_FACE = (180.0, 72.0, 272.0, 174.0)
ASTRONAUT_EYES = ((205.0, 100.0), (249.0, 107.0))      # her right eye (image left) first

# messi5.jpg (548×342): same method on a 10× zoom with a 5 px grid — cheeks x≈227 / x≈257,
# hairline y≈94, chin y≈134. The face is ~30 px wide: small for BlazeFace short-range.
MESSI_FACE = (227.0, 94.0, 257.0, 134.0)
MESSI_PATHS = [paths.opencv_doc_data() / "messi5.jpg"]


def astronaut() -> np.ndarray:
    """The astronaut photo as BGR uint8 512×512×3."""
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def messi_path() -> Path | None:
    return next((p for p in MESSI_PATHS if p.is_file()), None)


def lfw_faces(n: int = 100, upscale: int = 8, canvas: int = 400, seed: int = 0):
    """The first `n` images of skimage.data.lfw_subset() (25×25 face crops), each upscaled and pasted at a
    random spot on a mid-gray canvas. Returns a list of (BGR canvas, pasted box): the LFW crops are tight
    around the face, so the pasted square is the face's reference box.
    """
    from skimage import data
    faces = data.lfw_subset()[:n]          # the first 100 are faces, the rest are not
    rng = np.random.default_rng(seed)
    out = []
    for face in faces:
        side = face.shape[0] * upscale
        patch = cv2.resize((face * 255).round().astype(np.uint8), (side, side), interpolation=cv2.INTER_CUBIC)
        img = np.full((canvas, canvas), 128, np.uint8)
        x, y = rng.integers(0, canvas - side + 1, size=2)
        img[y:y + side, x:x + side] = patch
        out.append((cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), (float(x), float(y), float(x + side), float(y + side))))
    return out
