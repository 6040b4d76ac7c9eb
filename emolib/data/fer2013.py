"""FER2013 as CSV: ``fer2013.csv`` (emotion,pixels,Usage) and ``icml_face_data.csv`` (emotion, Usage, pixels).

The two releases differ only in column order and header spelling (``icml_face_data.csv`` has leading
spaces: `` Usage``, `` pixels``), so columns are found by their stripped, lower-cased names. Pixels are
parsed in bulk by numpy (one ``np.fromstring`` per chunk of rows, not a Python loop over 82M numbers);
only when a chunk fails to parse is it re-read row by row, to name the bad row.
"""
from __future__ import annotations

import csv
import sys
import warnings
from pathlib import Path

import numpy as np

from emolib.core.labels import NUM_CLASSES
from emolib.data.arrays import IMAGE_SIZE, FaceArrays
from emolib.data.errors import DataFormatError
from emolib.data.splits import FER2013_USAGE, SPLIT_TO_USAGE, USAGE_TO_SPLIT

CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
REQUIRED_COLUMNS = ("emotion", "pixels", "usage")
PIXELS = IMAGE_SIZE * IMAGE_SIZE
_CHUNK_ROWS = 4096


def read_csv(path: str | Path) -> FaceArrays:
    """Decode a FER2013 CSV into FaceArrays; any malformed row raises DataFormatError naming the line."""
    path = Path(path)
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 20))   # a pixels field is ~9 KB
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader([f.readline()]), None)
        if not header:
            raise DataFormatError(f"{path}: empty file, expected a header with columns {REQUIRED_COLUMNS}")
        cols = _column_index(path, header)
        emotions, usages, pixels = [], [], []
        for line, text in enumerate(f, start=2):               # line 1 is the header
            text = text.rstrip("\r\n")
            if not text:
                continue
            # FER2013 rows carry no quotes; str.split skips csv.reader's per-character work on ~300 MB.
            row = next(csv.reader([text])) if '"' in text else text.split(",")
            if len(row) != len(header):
                raise DataFormatError(f"{path}: line {line}: expected {len(header)} fields, found {len(row)}")
            emotions.append((line, row[cols["emotion"]]))
            usages.append((line, row[cols["usage"]]))
            pixels.append((line, row[cols["pixels"]]))
    if not pixels:
        raise DataFormatError(f"{path}: no data rows after the header")
    labels = _parse_labels(path, emotions)
    splits = _parse_usage(path, usages)
    images = _parse_pixels(path, pixels)
    return FaceArrays(images=images, labels=labels, splits=splits, source=f"fer2013:csv:{path.name}")


def _column_index(path: Path, header: list[str]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise DataFormatError(f"{path}: line 1: missing column(s) {missing}; header is {header}, "
                              f"expected emotion, pixels and Usage (any order, spaces ignored)")
    return {c: names.index(c) for c in REQUIRED_COLUMNS}


def _parse_labels(path: Path, emotions: list[tuple[int, str]]) -> np.ndarray:
    labels = np.empty(len(emotions), dtype=np.int64)
    for i, (line, text) in enumerate(emotions):
        try:
            value = int(text.strip())
        except ValueError:
            raise DataFormatError(f"{path}: line {line}: emotion {text!r} is not an integer") from None
        if not 0 <= value < NUM_CLASSES:
            raise DataFormatError(f"{path}: line {line}: emotion {value} out of range 0..{NUM_CLASSES - 1}")
        labels[i] = value
    return labels


def _parse_usage(path: Path, usages: list[tuple[int, str]]) -> np.ndarray:
    splits = np.empty(len(usages), dtype="<U5")
    for i, (line, text) in enumerate(usages):
        split = USAGE_TO_SPLIT.get(text.strip().lower())
        if split is None:
            raise DataFormatError(f"{path}: line {line}: unknown Usage {text!r}; "
                                  f"expected {', '.join(FER2013_USAGE)}")
        splits[i] = split
    return splits


def _parse_pixels(path: Path, pixels: list[tuple[int, str]]) -> np.ndarray:
    images = np.empty((len(pixels), PIXELS), dtype=np.uint8)
    for start in range(0, len(pixels), _CHUNK_ROWS):
        chunk = pixels[start:start + _CHUNK_ROWS]
        values = _fast_parse(chunk)
        if values is None:                     # something is off in this chunk: find the row and say what
            values = np.stack([_parse_row(path, line, text) for line, text in chunk])
        images[start:start + len(chunk)] = values
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def _fast_parse(chunk: list[tuple[int, str]]) -> np.ndarray | None:
    """All rows of a chunk in one numpy call, or None when anything is off (the caller then finds the row)."""
    texts = [t for _, t in chunk]
    if any(t.strip().count(" ") != PIXELS - 1 for t in texts):      # PIXELS numbers, single spaces
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # older numpy warns (not raises) when it stops at a bad token
        try:
            values = np.fromstring(" ".join(texts), dtype=np.int32, sep=" ")
        except (DeprecationWarning, ValueError):
            return None
    if values.size != len(texts) * PIXELS or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(len(texts), PIXELS)


def _parse_row(path: Path, line: int, text: str) -> np.ndarray:
    tokens = text.split()
    if len(tokens) != PIXELS:
        raise DataFormatError(f"{path}: line {line}: expected {PIXELS} pixel values "
                              f"({IMAGE_SIZE}x{IMAGE_SIZE}), found {len(tokens)}")
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise DataFormatError(f"{path}: line {line}: non-numeric pixel value {bad!r}") from None
    if values.min() < 0 or values.max() > 255:
        bad = values[(values < 0) | (values > 255)][0]
        raise DataFormatError(f"{path}: line {line}: pixel value {bad} out of range 0..255")
    return values.astype(np.uint8)


def write_csv(path: str | Path, arrays: FaceArrays, *, style: str = "fer2013") -> Path:
    """Write FaceArrays in a FER2013 CSV layout (``fer2013`` or ``icml``); used by tests and the bench."""
    path = Path(path)
    table = [str(v) for v in range(256)]
    with open(path, "w", newline="") as f:
        f.write("emotion,pixels,Usage\n" if style == "fer2013" else "emotion, Usage, pixels\n")
        for img, label, split in zip(arrays.images, arrays.labels, arrays.splits):
            pix = " ".join([table[v] for v in img.ravel().tolist()])
            usage = SPLIT_TO_USAGE[str(split)]
            f.write(f"{label},{pix},{usage}\n" if style == "fer2013" else f"{label},{usage},{pix}\n")
    return path


if __name__ == "__main__":   # python -m emolib.data.fer2013 file.csv: parse and print counts
    print(read_csv(sys.argv[1]).counts())
