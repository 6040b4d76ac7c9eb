"""Small synthetic FER2013-like faces for tests and benchmarks (`make_faces`), nothing binary in git.

`make_faces()` draws smooth 48×48 faces-ish images (smooth so that JPG round trips stay close), with one
blank image and one duplicated face (same pixels in train and test under different labels), in a shuffled
order. `texture=True` adds a random fine texture per image, so that unrelated images differ as much in
their detail as real photographs do (the near-duplicate bench needs that: smooth images alone are alike).
"""
from __future__ import annotations

import cv2
import numpy as np

from emolib.core.labels import EMOTIONS
from emolib.data.arrays import FaceArrays

BLANK_ROW, DUP_ROWS = 0, (1, 2)


def make_faces(per_class=(10, 2, 2), seed: int = 0, *, counts=None, texture: bool = False) -> FaceArrays:
    """`per_class` images per class for (train, val, test); rows shuffled; row 0 blank, rows 1 and 2 equal.

    counts: instead of `per_class`, one tuple of per-class counts per split, e.g. FER2013's
    ``(train_counts, val_counts, test_counts)``."""
    rng = np.random.default_rng(seed)
    counts = counts or [(k,) * len(EMOTIONS) for k in per_class]
    labels, splits = [], []
    for split, row in zip(("train", "val", "test"), counts):
        for c, k in enumerate(row):
            labels += [c] * k
            splits += [split] * k
    order = rng.permutation(len(labels))
    labels = np.array(labels, dtype=np.int64)[order]
    splits = np.array(splits, dtype="<U5")[order]
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    images = []
    for i in range(len(labels)):
        a, b, c = rng.uniform(-1, 1, 3)
        base = 128 + 60 * (a * xx + b * yy) + 40 * np.sin(3 * c + 6 * xx * yy)
        noise = cv2.GaussianBlur(rng.normal(0, 25, (48, 48)), (0, 0), 3)
        if texture:
            base = base + _texture(rng)
        images.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    images = np.stack(images)
    images[BLANK_ROW] = 0
    # The same face twice: once in train, once in test, under another label (leakage + conflict).
    images[DUP_ROWS[1]] = images[DUP_ROWS[0]]
    splits[list(DUP_ROWS)] = ["train", "test"]
    labels[DUP_ROWS[1]] = (labels[DUP_ROWS[0]] + 1) % len(EMOTIONS)
    return FaceArrays(images=images, labels=labels, splits=splits, source="fixture")


def _texture(rng: np.random.Generator) -> np.ndarray:
    """Random structure at the scales a face's features have (a few pixels to a third of the face) and a
    fine grain: without it the smooth faces are a three-parameter family, far more alike than photographs."""
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (48, 48)), (0, 0), rng.uniform(2.0, 4.0))
    fine = cv2.GaussianBlur(rng.normal(0, 1, (48, 48)), (0, 0), 1.0)
    return 35 * coarse / coarse.std() + 8 * fine / fine.std()
