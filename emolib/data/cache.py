"""Decoded arrays, saved once as one ``.npz`` per source under `emolib.core.paths.cache_dir()`.

The file name identifies the source (kind + a hash of its path or generator parameters + the data-format
version); the file stores that name's key and the source's fingerprint. A load whose fingerprint differs from the
stored one rebuilds and overwrites, so an edited CSV or a folder with new files is noticed. Writes are atomic
(`emolib.core.atomic`): an interrupted run never leaves a half-written cache. What is read is checked: a file
that is damaged (a copy cut short, a disk error), inconsistent, or another source's is rebuilt from the source,
with a `CacheRebuilt` warning naming it.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from emolib.core import paths
from emolib.core.atomic import atomic_write
from emolib.data.arrays import FaceArrays

# Bump when the decoded arrays would differ for the same source (decoder, resize, split rules), or the file's layout.
FORMAT_VERSION = 2

# What np.load raises on a damaged file: a bad zip, a truncated member, a bad header, a missing entry.
_UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


class CacheRebuilt(UserWarning):
    """A cache file could not be used as it was (damaged or another source's) and is rebuilt from the source."""


def digest(obj) -> str:
    """Short stable hash of any JSON-able value."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def files_fingerprint(root: Path) -> str:
    """Relative paths, sizes and mtimes of every file under `root` (or of `root` itself if a file).

    Stat-only (no file is read), so a cache hit at FER2013 size (35,887 JPGs) stays well under a second.
    """
    root = Path(root)
    if root.is_file():
        st = root.stat()
        return digest([root.name, st.st_size, st.st_mtime_ns])
    h = hashlib.sha256()
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in reversed(entries):            # depth first, in name order
            if e.is_dir(follow_symlinks=True):
                stack.append((e.path, f"{rel}{e.name}/"))
            else:
                st = e.stat()
                h.update(f"{rel}{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def cache_key(kind: str, identity) -> str:
    """One key per source: `kind` (e.g. "fer2013-csv") and the source's identity (path or params)."""
    return f"{kind}-{digest(identity)}"


def cache_path(kind: str, identity) -> Path:
    return paths.cache_dir() / f"{cache_key(kind, identity)}.v{FORMAT_VERSION}.npz"


def save(path: Path, arrays: FaceArrays, key: str) -> Path:
    fields = dict(images=arrays.images, labels=arrays.labels, splits=arrays.splits.astype("<U5"),
                  classes=np.array(arrays.classes), source=np.array(arrays.source),
                  fingerprint=np.array(arrays.fingerprint), notes=np.array(arrays.notes, dtype=str),
                  skipped=np.array(arrays.skipped, dtype=str).reshape(-1, 2),
                  format_version=np.array(FORMAT_VERSION), key=np.array(key))
    if arrays.masks is not None:
        fields["masks"] = arrays.masks
    if arrays.targets is not None:
        fields.update(targets=arrays.targets, label_mode=np.array(arrays.label_mode))
    with atomic_write(path) as f:
        np.savez(f, **fields)                  # uncompressed: a FER2013-size load stays fast (docs/benchmarks.md)
    return path


def read(path: Path) -> FaceArrays:
    """The arrays a cache file holds; raises one of `_UNREADABLE` if it is damaged or inconsistent."""
    with np.load(path, allow_pickle=False) as z:
        arrays = FaceArrays(images=z["images"], labels=z["labels"].astype(np.int64), splits=z["splits"],
                            classes=tuple(z["classes"].tolist()), masks=z["masks"] if "masks" in z else None,
                            source=str(z["source"]), fingerprint=str(z["fingerprint"]),
                            notes=z["notes"].tolist(), skipped=[tuple(r) for r in z["skipped"].tolist()],
                            targets=z["targets"] if "targets" in z else None,
                            label_mode=str(z["label_mode"]) if "label_mode" in z else "")
    n = len(arrays.images)
    if arrays.images.shape[1:] != (48, 48) or len(arrays.labels) != n or len(arrays.splits) != n or (
            arrays.masks is not None and len(arrays.masks) != n):
        raise ValueError(f"inconsistent arrays ({n} images, {len(arrays.labels)} labels, {len(arrays.splits)} splits)")
    return arrays


def _stored(path: Path) -> tuple[str, str]:
    """(key, fingerprint) stored in a cache file; reads only those entries."""
    with np.load(path, allow_pickle=False) as z:
        return str(z["key"]), str(z["fingerprint"])


def _cached(path: Path, key: str, fingerprint: str) -> FaceArrays | None:
    """The arrays at `path` when they are this source's, current and readable; None (with a warning when the
    file is damaged or another source's) when they must be rebuilt."""
    if not path.exists():
        return None
    try:
        stored_key, stored_fingerprint = _stored(path)
        if stored_key != key:
            warnings.warn(f"data cache {path} holds another source's arrays ({stored_key}); rebuilding it",
                          CacheRebuilt, stacklevel=3)
            return None
        if stored_fingerprint != fingerprint:          # the source changed: rebuilt, as expected
            return None
        return read(path)
    except _UNREADABLE as e:
        warnings.warn(f"data cache {path} is damaged ({type(e).__name__}: {e}); rebuilding it from the source",
                      CacheRebuilt, stacklevel=3)
        return None


def load_or_build(kind: str, identity, fingerprint: str, build: Callable[[], FaceArrays], *,
                  use_cache: bool = True) -> FaceArrays:
    """The cached arrays if they are this source's with its current fingerprint, else `build()` (then saved when
    `use_cache`)."""
    path, key = cache_path(kind, identity), cache_key(kind, identity)
    if use_cache and (arrays := _cached(path, key, fingerprint)) is not None:
        return arrays
    arrays = build()
    arrays.fingerprint = fingerprint
    if use_cache:
        save(path, arrays, key)
    return arrays
