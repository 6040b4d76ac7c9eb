"""Image-folder datasets: any ``root/<split>/<class>/*.png|jpg`` tree, including the FER2013 releases.

- ``msambare/fer2013``: JPG, ``train/`` and ``test/``; ``test/`` holds both ``PublicTest_*`` and
  ``PrivateTest_*`` files, which go to ``val`` and ``test`` by that file-name prefix.
- ``ananthu017/emotion-detection-fer``: PNG, class folders ``disgusted``, ``fearful``, ``surprised`` …
  (mapped through `emolib.core.labels.canonical`); file names such as ``im0.png`` carry no split, so its
  test folder cannot be split and ``val`` is carved from ``train`` (stratified), with a note saying so.

Decoding happens once, in a thread pool (OpenCV releases the GIL). A file that cannot be decoded is
skipped, counted and listed in ``FaceArrays.skipped``; the rest loads.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from emolib.core.images import IMAGE_SUFFIXES
from emolib.core.labels import ALIASES, EMOTIONS, canonical
from emolib.data.arrays import IMAGE_SIZE, FaceArrays
from emolib.data.errors import DataFormatError
from emolib.data.splits import FOLDER_SPLIT_NAMES, SPLITS, USAGE_TO_SPLIT, stratified_split

# FER2013 file-name prefixes (msambare release) are the original Usage of each image.
_PREFIX = re.compile(rf"^({'|'.join(USAGE_TO_SPLIT)})[_-]", re.IGNORECASE)


def split_dirs(root: Path) -> dict[str, Path]:
    """The split folders directly under `root` ({canonical split: folder}); two spellings of one split raise."""
    found: dict[str, Path] = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        split = FOLDER_SPLIT_NAMES.get(d.name.lower())
        if split is None:
            continue
        if split in found:
            raise DataFormatError(f"{root}: both {found[split].name}/ and {d.name}/ mean split {split!r}")
        found[split] = d
    return found


def read_folder(root: str | Path, *, val_frac: float = 0.1, seed: int = 0,
                workers: int | None = None) -> FaceArrays:
    """Decode a ``root/<split>/<class>/`` tree into FaceArrays (48×48 gray, canonical labels)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a folder")
    dirs = split_dirs(root)
    if not dirs:
        raise DataFormatError(f"{root}: no split folders; expected some of {sorted(FOLDER_SPLIT_NAMES)} "
                              f"each holding one folder per class")
    files, labels, splits, skipped = [], [], [], []
    for split, split_dir in dirs.items():
        n_before = len(files)
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            label = _class_index(class_dir)
            for f in sorted(class_dir.iterdir(), key=_natural_key):
                if f.name.startswith(".") or not f.is_file():
                    continue
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append((str(f), f"not an image file ({f.suffix or 'no suffix'})"))
                    continue
                files.append(f)
                labels.append(label)
                splits.append(_split_of(split, f.name))
        if len(files) == n_before:
            raise DataFormatError(f"{split_dir}: split folder {split!r} holds no images "
                                  f"(expected {split_dir}/<class>/*.png|jpg)")

    images, ok, reasons = decode_images(files, workers=workers)
    skipped += [(str(f), r) for f, r in zip(files, reasons) if r]
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        raise DataFormatError(f"{root}: none of {len(files)} image files could be decoded")
    labels_a = np.asarray(labels, dtype=np.int64)[keep]
    splits_a = np.asarray(splits, dtype="<U5")[keep]
    # Rows in split order (train, val, test); within a split, folder then file order (stable).
    order = np.argsort(np.array([SPLITS.index(s) for s in splits_a]), kind="stable")
    arrays = FaceArrays(images=images[keep][order], labels=labels_a[order], splits=splits_a[order],
                        source=f"folder:{root.name}", skipped=skipped)
    n_other = sum(1 for _, r in skipped if r.startswith("not an image"))
    if n_bad := len(skipped) - n_other:
        arrays.notes.append(f"{n_bad} image file(s) could not be decoded and were skipped (see .skipped)")
    if n_other:
        arrays.notes.append(f"{n_other} file(s) without an image suffix were ignored (see .skipped)")
    if "val" not in set(arrays.splits.tolist()):
        arrays = _carve_val(arrays, dirs, val_frac=val_frac, seed=seed)
    return arrays


def _class_index(class_dir: Path) -> int:
    try:
        return EMOTIONS.index(canonical(class_dir.name))
    except ValueError:
        known = ", ".join(EMOTIONS)
        aliases = ", ".join(sorted(set(ALIASES) - set(EMOTIONS)))
        raise DataFormatError(f"{class_dir}: unknown class folder {class_dir.name!r}; "
                              f"known names: {known}; aliases: {aliases}") from None


def _split_of(folder_split: str, filename: str) -> str:
    """A FER2013 prefix in the test folder decides val vs test; otherwise the folder decides."""
    m = _PREFIX.match(filename)
    if folder_split == "test" and m:
        return USAGE_TO_SPLIT[m.group(1).lower()]
    return folder_split


def _natural_key(p: Path):
    """``im2.png`` before ``im10.png``: digits compare as numbers."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _carve_val(arrays: FaceArrays, dirs: dict[str, Path], *, val_frac: float, seed: int) -> FaceArrays:
    why = ("its test folder has no PublicTest_/PrivateTest_ file names, so it cannot be split into val/test"
           if "test" in dirs else "it has no val folder")
    out = stratified_split(arrays, val_frac=val_frac, seed=seed)
    out.notes.append(f"{why}; val carved from train with stratified_split(val_frac={val_frac}, seed={seed}), "
                     f"test kept whole")
    return out


def decode_one(path: Path) -> tuple[np.ndarray | None, str]:
    """One file -> (48×48 uint8 gray, "") or (None, reason). Reads bytes first so odd paths work."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        return None, f"cannot read file: {e.strerror or e}"
    if buf.size == 0:
        return None, "empty file"
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    except cv2.error as e:
        return None, f"cannot decode image: {str(e).strip().splitlines()[-1]}"
    if img is None or img.size == 0:
        return None, "cannot decode image (corrupt or unsupported format)"
    if img.dtype != np.uint8:                   # 16-bit PNG/TIFF: keep the top 8 bits
        img = (img / 257).astype(np.uint8) if img.dtype == np.uint16 else cv2.convertScaleAbs(img)
    if img.shape != (IMAGE_SIZE, IMAGE_SIZE):
        img = cv2.resize(img, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return img, ""


def decode_images(files: list[Path], *, workers: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode many files: (images N×48×48 uint8, ok bool N, reason per file ("" when decoded))."""
    images = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    reasons = [""] * len(files)
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (img, reason) in enumerate(pool.map(decode_one, files)):
            if img is None:
                reasons[i] = reason
            else:
                images[i], ok[i] = img, True
    return images, ok, reasons
