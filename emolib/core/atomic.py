"""The one atomic write: a unique temporary file next to the target, then ``os.replace``.

A reader (a resumed run, the cache, the report index) sees the old file or the new one, never half
of one. The temporary name is unique (``tempfile.mkstemp``), so two processes writing the same
target never write into each other's temporary file; it starts with a dot, so globs such as
``*.png`` never pick it up, and it is removed when the write fails.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_write", "write_bytes", "write_text", "copy_file", "replace_tree"]

# mkstemp makes its file private (0600); the written file gets the permissions open() would give it.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kw) -> Iterator[IO]:
    """Open a temporary file for writing; when the block ends without an error it replaces `path`
    (its folder is created), and on any error (Ctrl-C included) it is removed and `path` is untouched."""
    if not mode.startswith(("w", "x")):
        raise ValueError(f"atomic_write writes a whole new file; mode must start with 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode.replace("x", "w"), **open_kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())             # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def copy_file(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy `src` to `dest` atomically."""
    with open(src, "rb") as fin, atomic_write(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return Path(dest)


def replace_tree(src: Path, dst: Path) -> None:
    """Put folder `src` at `dst`, the old `dst` removed only after the new one is in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(dst.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.exists():
        shutil.rmtree(old)
