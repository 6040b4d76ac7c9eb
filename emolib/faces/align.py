"""`crop_face`: the one face crop shared by the recognizer, the CLI, the notebooks and the webcam demo.

A crop is placed by the model's `Framing` (emolib.core.spec), in units of the face's eyes: the crop's
width is the face's frontal eye gap / framing.eye_gap, the eye midpoint sits at mid-width and
framing.eye_y of the height, and the eyes are levelled when framing.align and keypoints allow.

Detectors draw different boxes for the same face (SSD's are tall, short-range BlazeFace's start at the
brows, Haar's are wide). `BOX_EYES` calibrates each detector's box to the eyes, so one face gives the same
crop whatever the detector: the scale comes from the calibrated box (a turned head's keypoints come closer
together, its box does not), the position from the eye keypoints when the detector gives them.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from emolib.core.spec import FER2013_FRAMING, Framing
from emolib.faces.detection import as_bgr
from emolib.faces.types import Face

# detector -> (eye midpoint x offset from the box centre / box width, eye line from the box top / box
# height, frontal eye gap / box width). Medians over the astronaut (eyes measured by hand) and the LFW
# faces of tests/photos.py (eyes: short-range BlazeFace keypoints); tests/test_faces.py re-measures them
# and checks these against it. Boxes of unknown origin are read like blazeface_full's.
BOX_EYES: dict[str, tuple[float, float, float]] = {
    "blazeface": (-0.040, 0.246, 0.433),
    "blazeface_full": (0.003, 0.327, 0.426),
    "ssd": (-0.030, 0.371, 0.484),
    "haar": (-0.004, 0.387, 0.405),
}


def eye_angle(face: Face) -> float:
    """Degrees the face is rolled (the line from its right eye to its left eye against the horizontal);
    0.0 without keypoints. Keypoints are eyes first: right eye (image left), left eye (image right)."""
    if face.keypoints is None or len(face.keypoints) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def face_eyes(face: Face) -> tuple[tuple[float, float], float]:
    """(eye midpoint (x, y) in image pixels, frontal eye gap in pixels) of a detected face."""
    dx, ey, gap = BOX_EYES.get(face.detector, BOX_EYES["blazeface_full"])
    cx, _ = face.center
    mid = (cx + dx * face.width, face.box[1] + ey * face.height)
    if face.keypoints is not None and len(face.keypoints) >= 2:
        mid = tuple(float(v) for v in np.mean(np.asarray(face.keypoints[:2], np.float64), axis=0))
    return mid, gap * face.width


def crop_transform(face: Face, framing: Framing = FER2013_FRAMING) -> tuple[np.ndarray, tuple[int, int]]:
    """The 2×3 affine map from the image to the crop (source resolution), and the crop's (width, height).

    A fallback region (no face found) is taken as it is: its box becomes the crop, stretched to the aspect.
    """
    if face.source == "fallback":
        w, h = max(1, round(face.width)), max(1, round(face.width * framing.aspect))
        sy = h / max(face.height, 1e-6)
        return np.array([[w / max(face.width, 1e-6), 0, -face.box[0] * w / max(face.width, 1e-6)],
                         [0, sy, -face.box[1] * sy]]), (w, h)
    (mx, my), gap = face_eyes(face)
    w = max(1, int(round(gap / framing.eye_gap)))
    h = max(1, int(round(w * framing.aspect)))
    # OpenCV's positive angle turns the picture counter-clockwise on screen: rotating by the eye
    # angle brings a clockwise-rolled face (left eye lower) back to level.
    m = cv2.getRotationMatrix2D((mx, my), eye_angle(face) if framing.align else 0.0, 1.0)
    m[:, 2] += (w / 2 - mx, framing.eye_y * h - my)     # then the eye midpoint to its place in the crop
    return m, (w, h)


def crop_face(image: np.ndarray, face: Face, size: int = 48, framing: Framing = FER2013_FRAMING) -> np.ndarray:
    """A gray uint8 size×size crop of `face` from BGR (or gray) `image`, framed by `framing`; border pixels
    replicated where the crop leaves the image, then shrunk with INTER_AREA (enlarged with INTER_LINEAR
    for faces under `size`)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2GRAY)
    m, (w, h) = crop_transform(face, framing)
    crop = cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if min(w, h) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def crop_faces(image: np.ndarray, faces: list[Face], size: int = 48, framing: Framing = FER2013_FRAMING) -> np.ndarray:
    """crop_face for every face: uint8 (N, size, size), N = len(faces) (0 rows when none)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2GRAY)
    if not faces:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, f, size, framing) for f in faces])

