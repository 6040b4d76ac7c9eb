"""FER+: Microsoft's re-annotation of FER2013 by ten raters a face, joined to FER2013's pixels by row position.

``fer2013new.csv`` (github.com/microsoft/FERPlus, MIT) has one row per ``fer2013.csv`` row, in the same
order: ``Usage, Image name, neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown,
NF``, the votes of the raters. The join is by position, never by ``Image name`` (in the published file the
names drift from the row index), after checking that both files' ``Usage`` columns agree row for row. Rows
without an image name (not a face: NF has the votes) are dropped and listed in ``FaceArrays.skipped``.

Labels follow the FER+ reference code (``src/ferplus.py``: ``_process_data``, ``_process_target``), one
`label_mode` for the training rows; validation and test rows always follow ``majority``:

- votes of 1 are set to 0 first (outlier removal); the shares below are of the votes that remain;
- ``majority``: the top emotion, when it has more than half of the votes and is not unknown/NF;
- ``probability`` and ``crossentropy``: the distribution of the top emotions (at most 3, taken until they
  hold 75% of the votes); a row whose kept emotions hold 50% of the votes or less, or whose top is
  unknown/NF, is dropped. ``crossentropy`` trains against the distribution, ``probability`` draws a label
  from it at each use (`emolib.training.loader`);
- ``multi_target``: every emotion with 30% of the votes or more is a target (the reference's loss,
  -log of the highest predicted probability among them, `emolib.training.loop`).

``FaceArrays.targets`` holds the rows' distributions (``multi_target``: uniform over the targets; val and
test: one-hot majority labels) and ``labels`` the top emotion, the majority label where one exists.
Classes: the eight of FER+ (FER2013's seven, then contempt: `emolib.core.labels.ALL_EMOTIONS`), or with
``contempt=False`` the seven: rows whose label is contempt are dropped, the distributions renormalized.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from emolib.core import paths
from emolib.core.labels import ALL_EMOTIONS, EMOTIONS, index
from emolib.data.arrays import FaceArrays
from emolib.data.errors import DataFormatError, DatasetUnavailable
from emolib.data.fer2013 import CSV_NAMES, read_csv
from emolib.data.folder import split_dirs
from emolib.data.kaggle import manual_dir
from emolib.data.splits import FER2013_USAGE, SPLIT_TO_USAGE, USAGE_TO_SPLIT

FERPLUS_CSV = "fer2013new.csv"
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
EMOTION_COLUMNS = 8                   # the first eight vote columns are emotions; unknown and NF follow
LABEL_MODES = ("majority", "probability", "crossentropy", "multi_target")
# FER+ column -> canonical class index (neutral -> 6, happiness -> 3, ..., contempt -> 7).
_CANONICAL = np.array([index(c) for c in VOTE_COLUMNS[:EMOTION_COLUMNS]])


def ferplus_dir() -> Path:
    """Where a user puts FER+ by hand: fer2013new.csv and fer2013.csv (or icml_face_data.csv) side by side."""
    return paths.raw_dir() / "ferplus"


# ------------------------------------------------------------------------------------- the label rules

def process_votes(votes, mode: str) -> np.ndarray:
    """The reference's ``_process_data``: ten vote counts -> a distribution over the ten columns.

    A row that its rule rejects comes back as all of its mass on ``unknown`` (the reference's own sign)."""
    raw = [0.0 if v <= 1 else float(v) for v in votes]          # outlier removal: single votes go
    total = sum(raw)
    unknown = [0.0] * len(raw)
    unknown[EMOTION_COLUMNS] = 1.0
    kept = [0.0] * len(raw)
    if mode == "majority":
        top = max(raw)
        if top > 0.5 * total:
            kept[int(np.argmax(raw))] = top
        else:
            kept = unknown
    elif mode in ("probability", "crossentropy"):
        share, count, valid = 0.0, 0, True
        while share < 0.75 * total and count < 3 and valid:
            top = max(raw)
            for i in range(len(raw)):                    # every emotion tied at the top joins at once
                if raw[i] == top:
                    kept[i], raw[i] = top, 0.0
                    share += top
                    count += 1
                    if i >= EMOTION_COLUMNS:             # unknown or NF reached: stop here
                        valid = False
                        if sum(kept) > top:              # emotions came first: unknown/NF is not kept
                            kept[i] = 0.0
                            count -= 1
                        break
        if sum(kept) <= 0.5 * total or count > 3:
            kept = unknown
    elif mode == "multi_target":
        kept = [v if v >= 0.3 * total else 0.0 for v in raw]
        if sum(kept) <= 0.5 * total:
            kept = unknown
    else:
        raise ValueError(f"unknown FER+ label mode {mode!r}; choose from {LABEL_MODES}")
    return np.array(kept) / sum(kept)


def row_target(votes, mode: str, *, contempt: bool = True) -> tuple[int, np.ndarray] | None:
    """(label, distribution over the classes in canonical order) of one row under `mode`, or None when dropped.

    Classes are `ALL_EMOTIONS` (eight) or, with ``contempt=False``, `EMOTIONS` (seven; a row whose label is
    contempt is dropped). ``multi_target``'s distribution is uniform over its targets."""
    processed = process_votes(votes, mode)
    top = int(np.argmax(processed))
    if top >= EMOTION_COLUMNS:                           # unknown, not a face, or no agreement
        return None
    dist = np.zeros(len(ALL_EMOTIONS))
    dist[_CANONICAL] = processed[:EMOTION_COLUMNS]
    if mode == "multi_target":
        dist = (dist > 0).astype(np.float64)
    label = int(_CANONICAL[top])
    if not contempt:
        if ALL_EMOTIONS[label] == "contempt":
            return None
        dist = dist[:len(EMOTIONS)]
    return label, dist / dist.sum()


# ------------------------------------------------------------------------------------- the files

def read_votes(path: Path) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(split per row, Image name per row, votes N×10 int) of a fer2013new.csv; a bad row raises naming its line."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataFormatError(f"{path}: empty file, expected the FER+ header Usage, Image name, "
                              f"{', '.join(VOTE_COLUMNS)}")
    names = [h.strip().lower() for h in rows[0]]
    wanted = ["usage", "image name", *(c.lower() for c in VOTE_COLUMNS)]
    if missing := [c for c in wanted if c not in names]:
        raise DataFormatError(f"{path}: line 1: missing column(s) {missing}; header is {rows[0]}")
    cols = [names.index(c) for c in wanted]
    splits, image_names, votes = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise DataFormatError(f"{path}: line {line}: expected {len(names)} fields, found {len(row)}")
        usage, name, *counts = (row[c].strip() for c in cols)
        if (split := USAGE_TO_SPLIT.get(usage.lower())) is None:
            raise DataFormatError(f"{path}: line {line}: unknown Usage {usage!r}; expected {', '.join(FER2013_USAGE)}")
        if not all(c.isdigit() for c in counts):
            raise DataFormatError(f"{path}: line {line}: votes must be counts (0, 1, 2, ...), found {counts}")
        splits.append(split)
        image_names.append(name)
        votes.append([int(c) for c in counts])
    if not votes:
        raise DataFormatError(f"{path}: no data rows after the header")
    return np.array(splits, dtype="<U5"), image_names, np.array(votes, dtype=np.int64)


def _check_aligned(votes_csv: Path, vote_splits: np.ndarray, fer_csv: Path, fer_splits: np.ndarray) -> None:
    """Both files list the same faces in the same order: same length, same Usage row for row."""
    join = (f"FER+ labels {fer_csv.name}'s rows by position: use both files as published, in their row order "
            f"(never re-sorted or joined by Image name)")
    if len(vote_splits) != len(fer_splits):
        raise DataFormatError(f"{votes_csv}: {len(vote_splits)} rows but {fer_csv} has {len(fer_splits)}; {join}")
    if (bad := np.flatnonzero(vote_splits != fer_splits)).size:
        i, line = int(bad[0]), int(bad[0]) + 2
        raise DataFormatError(f"{votes_csv}: line {line}: Usage {SPLIT_TO_USAGE[str(vote_splits[i])]!r} but "
                              f"{fer_csv} line {line} has {SPLIT_TO_USAGE[str(fer_splits[i])]!r} "
                              f"({bad.size} rows disagree); {join}")


def read_ferplus(votes_csv: str | Path, fer_csv: str | Path, *, label_mode: str = "majority",
                 contempt: bool = True) -> FaceArrays:
    """FER2013's faces with FER+'s labels: training rows under `label_mode`, val and test under majority."""
    if label_mode not in LABEL_MODES:
        raise DataFormatError(f"unknown FER+ label_mode {label_mode!r}; choose from {', '.join(LABEL_MODES)}")
    votes_csv, fer_csv = Path(votes_csv), Path(fer_csv)
    splits, image_names, votes = read_votes(votes_csv)
    faces = read_csv(fer_csv)
    _check_aligned(votes_csv, splits, fer_csv, faces.splits)
    keep, labels, targets, skipped = [], [], [], []
    dropped = {s: 0 for s in ("train", "val", "test")}
    for i, (split, name, row) in enumerate(zip(splits, image_names, votes)):
        if not name:
            skipped.append((f"{votes_csv.name} line {i + 2}", f"no Image name: not a face (NF votes {row[-1]})"))
            continue
        found = row_target(row, label_mode if split == "train" else "majority", contempt=contempt)
        if found is None:
            dropped[str(split)] += 1
            continue
        keep.append(i)
        labels.append(found[0])
        targets.append(found[1])
    classes = ALL_EMOTIONS if contempt else EMOTIONS
    note = (f"FER+ labels: {label_mode} for train, majority for val and test, {len(classes)} classes; "
            f"{len(skipped)} rows without an Image name (not a face) dropped; dropped by the label rule"
            f"{'' if contempt else ' (contempt labels included)'}: "
            + ", ".join(f"{s} {k}" for s, k in dropped.items()))
    keep = np.array(keep, dtype=np.int64)
    return FaceArrays(images=faces.images[keep], labels=np.array(labels, dtype=np.int64), splits=splits[keep],
                      classes=classes, source=f"ferplus:{votes_csv.name}+{fer_csv.name}", notes=[note],
                      skipped=skipped, targets=np.array(targets, dtype=np.float32).reshape(-1, len(classes)),
                      label_mode=label_mode)


# ------------------------------------------------------------------------------------- where the files are

def _find(folder: Path, names) -> Path | None:
    """The first of `names` in `folder` or one level below it (an unpacked archive nests a level)."""
    for pattern in ("{}", "*/{}"):
        for name in names:
            if hits := sorted(folder.glob(pattern.format(name))):
                return hits[0]
    return None


def locate_ferplus(path: str | Path | None = None) -> tuple[Path, Path]:
    """(fer2013new.csv, fer2013.csv or icml_face_data.csv): from `path` (a folder holding both, or the FER+
    CSV), else `ferplus_dir()`; the FER2013 CSV beside the FER+ one, else in data/raw/fer2013."""
    where = ferplus_dir() if path is None else Path(path).expanduser()
    if not where.exists():
        raise DatasetUnavailable(_where_message(f"{where} does not exist"))
    votes = where if where.is_file() else _find(where, (FERPLUS_CSV,))
    if votes is None or votes.suffix.lower() != ".csv":
        raise DatasetUnavailable(_where_message(f"no {FERPLUS_CSV} in {where}"))
    for folder in (votes.parent, manual_dir()):
        if folder.is_dir() and (fer := _find(folder, CSV_NAMES)) is not None:
            return votes, fer
    release = [str(d) for d in (votes.parent, manual_dir()) if d.is_dir() and _holds_folder_release(d)]
    why = (f"only the image-folder release of FER2013 is there ({', '.join(release)}), which has no row order "
           f"to join by" if release else f"no {' or '.join(CSV_NAMES)} beside {votes} or in {manual_dir()}")
    raise DatasetUnavailable(_where_message(f"{FERPLUS_CSV} needs FER2013's CSV, and {why}"))


def _holds_folder_release(folder: Path) -> bool:
    return bool(split_dirs(folder)) or any(d.is_dir() and split_dirs(d) for d in folder.iterdir())


def _where_message(why: str) -> str:
    return (f"FER+ is not available: {why}.\n"
            f"  - FER+ labels FER2013's rows by position: it needs {FERPLUS_CSV} (github.com/microsoft/FERPlus, "
            f"data/{FERPLUS_CSV}) and FER2013 as a CSV ({' or '.join(CSV_NAMES)}, Kaggle), not an image-folder "
            f"release.\n"
            f"  - Put both files in {ferplus_dir()}, or side by side anywhere and pass that folder: "
            f"emolib.data.load('ferplus', path=...).")


if __name__ == "__main__":   # python -m emolib.data.ferplus fer2013new.csv fer2013.csv [mode]: counts
    print(read_ferplus(*sys.argv[1:3], label_mode=(sys.argv[3:] or ["majority"])[0]).counts())
