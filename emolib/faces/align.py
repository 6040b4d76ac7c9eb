"""`crop_face`: the one face crop shared by the recognizer, the CLI, the notebooks and the webcam demo."""
from __future__ import annotations

import math

import cv2
import numpy as np

from .detection import as_bgr
from .types import Face


def eye_angle(face: Face) -> float:
    """Degrees the face is rolled (the line from its right eye to its left eye against the horizontal);
    0.0 without keypoints. Keypoints are eyes first: right eye (image left), left eye (image right)."""
    if face.keypoints is None or len(face.keypoints) < 2:
        return 0.0
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def crop_transform(face: Face, margin: float = 0.2) -> tuple[np.ndarray, int]:
    """The 2×3 affine map from the image to the square crop (eyes levelled about the box centre,
    the box grown by `margin` of its size on every side), and the crop's side in source pixels."""
    cx, cy = face.center
    side = max(1, int(round(max(face.width, face.height) * (1 + 2 * margin))))
    # OpenCV's positive angle turns the picture counter-clockwise on screen: rotating by the eye
    # angle brings a clockwise-rolled face (left eye lower) back to level.
    m = cv2.getRotationMatrix2D((cx, cy), eye_angle(face), 1.0)
    m[:, 2] += (side / 2 - cx, side / 2 - cy)          # then move the box centre to the crop centre
    return m, side


def crop_face(image: np.ndarray, face: Face, size: int = 48, margin: float = 0.2) -> np.ndarray:
    """A gray uint8 size×size crop of `face` from BGR (or gray) `image`: eyes levelled when keypoints
    exist, `margin` added around the box, border pixels replicated where the crop leaves the image,
    then shrunk with INTER_AREA (enlarged with INTER_LINEAR for faces under `size`)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2GRAY)
    m, side = crop_transform(face, margin)
    crop = cv2.warpAffine(gray, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def crop_faces(image: np.ndarray, faces: list[Face], size: int = 48, margin: float = 0.2) -> np.ndarray:
    """crop_face for every face: uint8 (N, size, size), N = len(faces) (0 rows when none)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2GRAY)
    if not faces:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, f, size, margin) for f in faces])
