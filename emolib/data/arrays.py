"""FaceArrays: what every source decodes into, once.

``images`` uint8 N×48×48, ``labels`` int64 canonical indices (FER2013 order, `emolib.core.labels`),
``splits`` one of ``train``/``val``/``test`` per row. Synthetic data also carries ``masks``: per
image, the pixels of the facial regions that carry its class (Grad-CAM ground truth). FER+ carries
``targets``: per row, a distribution over `classes` (its raters' processed votes) that training may use
instead of the one label, as ``label_mode`` says (`emolib.data.ferplus`); ``labels`` stay the rows'
single labels, which evaluation scores against.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emolib.core.labels import EMOTIONS, remap_table, resolve_classes
from emolib.data.errors import DataOptionsError
from emolib.data.splits import SPLITS

IMAGE_SIZE = 48


@dataclass
class FaceArrays:
    images: np.ndarray                     # uint8 (N, 48, 48)
    labels: np.ndarray                     # int64 (N,), index into `classes`
    splits: np.ndarray                     # '<U5' (N,), values in SPLITS
    classes: tuple[str, ...] = EMOTIONS
    masks: np.ndarray | None = None        # bool (N, 48, 48) evidence regions, synthetic only
    source: str = ""                       # e.g. "synthetic(seed=0,n=6000)" or "fer2013:csv:<path>"
    fingerprint: str = ""                  # hash of the source files/params that produced the arrays
    notes: list[str] = field(default_factory=list)   # things the loader wants the user to know
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) not decoded
    targets: np.ndarray | None = None      # float32 (N, C) per-row distributions over `classes` (FER+), rows sum to 1
    label_mode: str = ""                   # how training reads `targets` (FER+: emolib.data.ferplus.LABEL_MODES)

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 3:
            raise ValueError(f"images must be uint8 N×H×W, got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != n or len(self.splits) != n:
            raise ValueError("images, labels and splits must have the same length")
        if self.masks is not None and self.masks.shape != self.images.shape:
            raise ValueError("masks must have the images' shape")
        if self.targets is not None and self.targets.shape != (n, len(self.classes)):
            raise ValueError(f"targets must be N×{len(self.classes)} (one column per class), got {self.targets.shape}")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        """One line (the default dataclass repr would print every pixel)."""
        per_split = ", ".join(f"{s}={int((self.splits == s).sum())}" for s in SPLITS)
        extras = "".join([", masks" if self.masks is not None else "",
                          f", {len(self.notes)} notes" if self.notes else "",
                          f", {len(self.skipped)} skipped" if self.skipped else "",
                          f", {self.label_mode} targets" if self.targets is not None else ""])
        side = "×".join(map(str, self.images.shape[1:]))
        return (f"FaceArrays({self.source or 'unnamed'}: {len(self)} images {side}, {per_split}, "
                f"{len(self.classes)} classes{extras})")

    def _take(self, idx: np.ndarray) -> "FaceArrays":
        return replace(self, images=self.images[idx], labels=self.labels[idx], splits=self.splits[idx],
                       masks=None if self.masks is None else self.masks[idx],
                       targets=None if self.targets is None else self.targets[idx])

    def split(self, name: str) -> "FaceArrays":
        """The rows of one split; an empty split is an error, not an empty dataset."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose from {SPLITS}")
        idx = np.flatnonzero(self.splits == name)
        if idx.size == 0:
            raise ValueError(f"split {name!r} of {self.source or 'this dataset'} is empty")
        return self._take(idx)

    def first_rows(self, n: int, splits=SPLITS) -> "FaceArrays":
        """Every row of the other splits and the first `n` rows of each of `splits` (a dry run's evaluation)."""
        keep = np.ones(len(self), bool)
        for s in splits:
            keep[np.flatnonzero(self.splits == s)[n:]] = False
        return self._take(np.flatnonzero(keep))

    def subset(self, classes) -> "FaceArrays":
        """Keep only `classes` (names or a subset name such as "five"); labels are re-indexed, the rows of
        dropped classes go, and `targets` keep the kept classes' columns, renormalized."""
        names = resolve_classes(classes)
        if missing := [c for c in names if c not in self.classes]:
            raise DataOptionsError(f"classes {classes!r}: {', '.join(missing)} not in this data "
                                   f"({self.source or 'arrays'}: {', '.join(self.classes)})")
        table = remap_table(names, among=self.classes)
        new = table[self.labels]
        keep = np.flatnonzero(new >= 0)
        out = self._take(keep)
        out.labels = new[keep]
        out.classes = names
        if out.targets is not None:
            cols = np.zeros((len(self.classes), len(names)), np.float32)
            cols[np.flatnonzero(table >= 0), table[table >= 0]] = 1
            kept = out.targets @ cols
            out.targets = kept / kept.sum(1, keepdims=True)
        return out

    def prior(self, split: str) -> float:
        """The accuracy of always guessing `split`'s commonest class (what a model that learnt nothing scores)."""
        labels = self.split(split).labels
        return np.bincount(labels).max() / len(labels)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images per class per split: {split: {class: n}}."""
        return {s: {c: int(((self.splits == s) & (self.labels == i)).sum()) for i, c in enumerate(self.classes)}
                for s in SPLITS}
