"""Decoded arrays, saved once as one ``.npz`` per source under `emolib.core.paths.cache_dir()`.

The file name identifies the source (kind + a hash of its path or generator parameters + the data-format
version); the file stores the source's fingerprint. A load whose fingerprint differs from the stored one
rebuilds and overwrites, so an edited CSV or a folder with new files is noticed. Writes are atomic
(`emolib.core.atomic`): an interrupted run never leaves a half-written cache.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from emolib.core import paths
from emolib.core.atomic import atomic_write
from emolib.data.arrays import FaceArrays

# Bump when the decoded arrays would differ for the same source (decoder, resize, split rules).
FORMAT_VERSION = 1


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


def cache_path(kind: str, identity) -> Path:
    """One file per source: `kind` (e.g. "fer2013-csv") and the source's identity (path or params)."""
    return paths.cache_dir() / f"{kind}-{digest(identity)}.v{FORMAT_VERSION}.npz"


def save(path: Path, arrays: FaceArrays) -> Path:
    fields = dict(images=arrays.images, labels=arrays.labels, splits=arrays.splits.astype("<U5"),
                  classes=np.array(arrays.classes), source=np.array(arrays.source),
                  fingerprint=np.array(arrays.fingerprint), notes=np.array(arrays.notes, dtype=str),
                  skipped=np.array(arrays.skipped, dtype=str).reshape(-1, 2),
                  format_version=np.array(FORMAT_VERSION))
    if arrays.masks is not None:
        fields["masks"] = arrays.masks
    with atomic_write(path) as f:
        np.savez(f, **fields)                  # uncompressed: loading FER2013-size arrays stays well under 1 s
    return path


def read(path: Path) -> FaceArrays:
    with np.load(path, allow_pickle=False) as z:
        return FaceArrays(images=z["images"], labels=z["labels"].astype(np.int64), splits=z["splits"],
                          classes=tuple(z["classes"].tolist()), masks=z["masks"] if "masks" in z else None,
                          source=str(z["source"]), fingerprint=str(z["fingerprint"]),
                          notes=z["notes"].tolist(), skipped=[tuple(r) for r in z["skipped"].tolist()])


def stored_fingerprint(path: Path) -> str | None:
    """The fingerprint inside a cache file (reads only that entry), or None if absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format_version"]) != FORMAT_VERSION:
                return None
            return str(z["fingerprint"])
    except (OSError, KeyError, ValueError):
        return None


def load_or_build(kind: str, identity, fingerprint: str, build: Callable[[], FaceArrays], *,
                  use_cache: bool = True) -> FaceArrays:
    """The cached arrays if their fingerprint matches, else `build()` (then saved when `use_cache`)."""
    path = cache_path(kind, identity)
    if use_cache and path.exists() and stored_fingerprint(path) == fingerprint:
        return read(path)
    arrays = build()
    arrays.fingerprint = fingerprint
    if use_cache:
        save(path, arrays)
    return arrays
