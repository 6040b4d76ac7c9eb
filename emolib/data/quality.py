"""Data-quality findings: blank or constant images and exact duplicates, reported and never dropped.

FER2013 has both: the msambare release holds a few blank images, and the same face appears more than
once, sometimes across splits (train/test leakage) or under two labels. Finding them is a report for the
user to act on; the arrays are left as they are.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np

from emolib.data.arrays import FaceArrays
from emolib.data.splits import SPLITS

BLANK_STD = 2.0          # pixel std (0-255 scale) under which an image counts as blank or constant


def blank_rows(images: np.ndarray, blank_std: float = BLANK_STD) -> np.ndarray:
    """A bool per image: blank or constant (pixel std < `blank_std`). One definition for every audit."""
    return _row_std(images.reshape(len(images), -1)) < blank_std


def find_quality_issues(arrays: FaceArrays, *, blank_std: float = BLANK_STD) -> dict:
    """Blank images (pixel std < `blank_std`) and groups of byte-identical images.

    Returns a dict of plain values: ``blank`` (row indices), ``duplicate_groups`` (lists of row indices,
    blank images excluded since they are reported already), and the subsets of those groups that cross
    splits (``cross_split_groups``) or carry different labels (``conflicting_label_groups``), plus counts.
    """
    flat = arrays.images.reshape(len(arrays), -1)
    is_blank = blank_rows(arrays.images, blank_std)
    blank = np.flatnonzero(is_blank)

    by_hash: dict[bytes, list[int]] = defaultdict(list)
    rows = np.ascontiguousarray(flat)
    for i in np.flatnonzero(~is_blank):
        by_hash[hashlib.blake2b(rows[i].data, digest_size=16).digest()].append(int(i))
    groups = sorted((g for g in by_hash.values() if len(g) > 1), key=lambda g: g[0])

    cross = [g for g in groups if len(set(arrays.splits[g].tolist())) > 1]
    conflicting = [g for g in groups if len(set(arrays.labels[g].tolist())) > 1]
    return {
        "n_images": len(arrays),
        "blank_std_threshold": blank_std,
        "blank": blank.tolist(),
        "blank_by_split": {s: int((arrays.splits[blank] == s).sum()) for s in SPLITS},
        "duplicate_groups": groups,
        "n_duplicate_groups": len(groups),
        "n_redundant_copies": sum(len(g) - 1 for g in groups),
        "cross_split_groups": cross,
        "conflicting_label_groups": conflicting,
    }


def _row_std(flat: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Per-row standard deviation in chunks (a float copy of all of FER2013 would be 660 MB)."""
    out = np.empty(len(flat), dtype=np.float64)
    for start in range(0, len(flat), chunk):
        x = flat[start:start + chunk].astype(np.float64)
        mean = x.mean(axis=1)
        out[start:start + chunk] = np.sqrt(np.maximum(np.einsum("ij,ij->i", x, x) / x.shape[1] - mean ** 2, 0))
    return out


def summarize(issues: dict) -> str:
    """One line for a notebook or a log."""
    return (f"{len(issues['blank'])} blank/constant image(s) (std < {issues['blank_std_threshold']}); "
            f"{issues['n_duplicate_groups']} exact-duplicate group(s) ({issues['n_redundant_copies']} extra copies), "
            f"{len(issues['cross_split_groups'])} crossing splits, "
            f"{len(issues['conflicting_label_groups'])} with conflicting labels, of {issues['n_images']} images")
