"""Where a split is defined: the three split names, how each source spells them, the stratified split.

Every source ends with one of `SPLITS` per row. FER2013 names its splits by ``Usage`` (the CSV
column, and the file-name prefix of the msambare folder release); folder trees name them by folder
(``train``/``training``, ``val``/``valid``/``validation``, ``test``/``testing``). A source without a
validation split gets one carved from train, stratified by class (`stratified_split`); the synthetic
source assigns all three splits the same way (`stratified_assign`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

SPLITS = ("train", "val", "test")

# FER2013's Usage values (CSV column and msambare file-name prefixes) and the clean protocol:
# train on Training, select on PublicTest, report PrivateTest once.
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
USAGE_TO_SPLIT = {usage.lower(): split for usage, split in FER2013_USAGE.items()}   # matched case-insensitively
SPLIT_TO_USAGE = {split: usage for usage, split in FER2013_USAGE.items()}

# Split folder names of image-folder trees (matched lower-cased).
FOLDER_SPLIT_NAMES = {"train": "train", "training": "train",
                      "val": "val", "valid": "val", "validation": "val",
                      "test": "test", "testing": "test"}


def stratified_assign(splits: np.ndarray, labels: np.ndarray, rows: np.ndarray,
                      fractions: dict[str, float], rng: np.random.Generator) -> int:
    """Give, per class among `rows` (a bool mask), a share ``fractions[name]`` of its rows the split
    `name`, in place in `splits`, drawing from `rng`; returns how many rows changed split.

    Per class (in label order) its rows are permuted once; the first round(frac × count) go to the
    first split named in `fractions`, the next ones to the second, and so on.
    """
    changed = 0
    for c in np.unique(labels[rows]):
        members = rng.permutation(np.flatnonzero(rows & (labels == c)))
        start = 0
        for name, frac in fractions.items():
            k = int(round(frac * members.size))
            splits[members[start:start + k]] = name
            start += k
        changed += start
    return changed


def stratified_split(arrays, val_frac: float = 0.1, seed: int = 0):
    """Move a stratified share `val_frac` of the 'train' rows of each class of FaceArrays to 'val'.

    For sources that ship no validation split; a source that already has 'val' rows is an error
    (re-splitting would silently change an official protocol).
    """
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    n_val = int((arrays.splits == "val").sum())
    if n_val:
        raise ValueError(f"{arrays.source or 'these arrays'} already have {n_val} 'val' rows; not re-splitting")
    splits = arrays.splits.copy()
    moved = stratified_assign(splits, arrays.labels, arrays.splits == "train", {"val": val_frac},
                              np.random.default_rng(seed))
    if moved == 0:
        raise ValueError(f"no 'train' rows to move to 'val' in {arrays.source or 'these arrays'}")
    return replace(arrays, splits=splits, skipped=list(arrays.skipped),
                   notes=[*arrays.notes, f"val: stratified {val_frac:.0%} of train (seed={seed}), {moved} rows"])
