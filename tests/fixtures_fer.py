"""Small FER2013 fixtures written into a test's tmp_path in the real formats (nothing binary in git).

`make_faces()` (in `emolib.data.fixtures`, so the benchmarks use it too) draws smooth 48×48 faces-ish images
with one blank image and one duplicated face; the writers lay the same pixels out as each FER2013 release does.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from emolib.core.labels import EMOTIONS
from emolib.data.arrays import FaceArrays
from emolib.data.fer2013 import write_csv
from emolib.data.fixtures import BLANK_ROW, DUP_ROWS, make_faces  # noqa: F401 - the tests import them from here

PREFIX = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
MSAMBARE_CLASSES = dict(zip(EMOTIONS, EMOTIONS))   # angry disgust fear happy sad surprise neutral
ANANTHU_CLASSES = {"angry": "angry", "disgust": "disgusted", "fear": "fearful", "happy": "happy",
                   "sad": "sad", "surprise": "surprised", "neutral": "neutral"}


def write_fer_csv(path: Path, faces: FaceArrays, style: str = "fer2013") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(path, faces, style=style)


def write_msambare(root: Path, faces: FaceArrays) -> Path:
    """train/ and test/ with JPGs named Training_<row>.jpg, PublicTest_<row>.jpg, PrivateTest_<row>.jpg."""
    for i, (img, label, split) in enumerate(zip(faces.images, faces.labels, faces.splits)):
        d = root / ("train" if split == "train" else "test") / MSAMBARE_CLASSES[EMOTIONS[label]]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{PREFIX[str(split)]}_{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def write_ananthu(root: Path, faces: FaceArrays) -> Path:
    """train/ and test/ (PublicTest and PrivateTest together) with PNGs named im<row>.png."""
    for i, (img, label, split) in enumerate(zip(faces.images, faces.labels, faces.splits)):
        d = root / ("train" if split == "train" else "test") / ANANTHU_CLASSES[EMOTIONS[label]]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"im{i}.png"), img)
    return root


def write_tree(root: Path, faces: FaceArrays, split_names=None, class_names=None, ext=".png") -> Path:
    """A generic root/<split>/<class>/<row><ext> tree with chosen folder spellings."""
    split_names = split_names or {"train": "train", "val": "val", "test": "test"}
    class_names = class_names or MSAMBARE_CLASSES
    for i, (img, label, split) in enumerate(zip(faces.images, faces.labels, faces.splits)):
        d = root / split_names[str(split)] / class_names[EMOTIONS[label]]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{i}{ext}"), img)
    return root


def canonical_order(arrays: FaceArrays) -> np.ndarray:
    """Row order by (split, label), stable: rows of both a CSV and a folder tree line up under it,
    because fixture file names carry the CSV row number and folders are read in natural name order."""
    split_idx = np.array([("train", "val", "test").index(s) for s in arrays.splits])
    return np.lexsort((arrays.labels, split_idx))


# ------------------------------------------------------------------------------ full size

# The real FER2013's class counts per Usage (angry, disgust, fear, happy, sad, surprise, neutral).
FER2013_COUNTS = {"Training": (3995, 436, 4097, 7215, 4830, 3171, 4965),
                  "PublicTest": (467, 56, 496, 895, 653, 415, 607),
                  "PrivateTest": (491, 55, 528, 879, 594, 416, 626)}
FER2013_BLANK_TRAINING = 13


def write_full_size_fer2013(path: Path, seed: int = 0) -> Path:
    """A fer2013.csv as the Kaggle release lays it out: 35,887 rows (Training 28,709, PublicTest 3,589,
    PrivateTest 3,589, in that order), the real per-split class counts, 13 blank Training images.

    The faces are the synthetic source's, drawn per class (so a model could learn them), each used once."""
    from emolib.data import synthetic
    pool = synthetic.generate(40_000, seed=seed)
    by_class = [list(np.flatnonzero(pool.labels == c)) for c in range(len(EMOTIONS))]
    rng = np.random.default_rng(seed)
    rows, usages = [], []
    for usage, counts in FER2013_COUNTS.items():
        block = [(c, by_class[c].pop()) for c, k in enumerate(counts) for _ in range(k)]
        rows += [block[i] for i in rng.permutation(len(block))]
        usages += [usage] * len(block)
    labels = np.array([c for c, _ in rows])
    images = pool.images[[i for _, i in rows]]
    images[rng.choice(sum(FER2013_COUNTS["Training"]),
                      FER2013_BLANK_TRAINING, replace=False)] = 0
    token = [str(v) for v in range(256)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("emotion,pixels,Usage\n")
        for img, label, usage in zip(images.reshape(len(images), -1).tolist(), labels, usages):
            f.write(f"{label},{' '.join([token[v] for v in img])},{usage}\n")
    return path
