"""Find FER2013 on disk or fetch it with kagglehub.

Order: an explicit local path → files placed by hand in ``data/raw/fer2013`` → a version already in
the kagglehub cache (so an offline machine reuses an earlier download; kagglehub itself would ask the
server for the latest version first) → ``kagglehub.dataset_download(handle)`` when allowed.
kagglehub caches under ``$KAGGLEHUB_CACHE`` (default ``~/.cache/kagglehub``) as
``datasets/<owner>/<name>/versions/<N>/``, with a ``datasets/<owner>/<name>/<N>.complete`` marker.
"""
from __future__ import annotations

import os
from pathlib import Path

from emolib.core import paths
from emolib.data.errors import DatasetUnavailable

DEFAULT_HANDLE = "msambare/fer2013"


def kagglehub_cache_root() -> Path:
    """Where kagglehub keeps downloads (its own rule: $KAGGLEHUB_CACHE, else ~/.cache/kagglehub)."""
    return Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub").expanduser()


def manual_dir() -> Path:
    """Where a user may place FER2013 by hand."""
    return paths.raw_dir() / "fer2013"


def _parse_handle(handle: str) -> tuple[str, str, int | None]:
    parts = handle.strip("/").split("/")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 4 and parts[2] == "versions" and parts[3].isdigit():
        return parts[0], parts[1], int(parts[3])
    raise ValueError(f"bad Kaggle dataset handle {handle!r}; expected 'owner/name' or 'owner/name/versions/N'")


def cached_version(handle: str) -> Path | None:
    """The newest complete version of `handle` already in the kagglehub cache, or None."""
    owner, name, version = _parse_handle(handle)
    base = kagglehub_cache_root() / "datasets" / owner / name
    versions = base / "versions"
    if not versions.is_dir():
        return None
    found = sorted((int(d.name), d) for d in versions.iterdir() if d.is_dir() and d.name.isdigit())
    if version is not None:
        found = [(v, d) for v, d in found if v == version]
    # kagglehub writes <N>.complete once a download finished; a folder without it may be half-written.
    complete = [(v, d) for v, d in found if (base / f"{v}.complete").exists() and any(d.iterdir())]
    return complete[-1][1] if complete else None


def _has_files(d: Path) -> bool:
    return d.is_dir() and any(not p.name.startswith(".") and p.name != "README.md" for p in d.iterdir())


def resolve_fer2013(handle: str = DEFAULT_HANDLE, path: str | Path | None = None,
                    download: bool = True) -> Path:
    """A local folder or file holding FER2013 (any of its three forms); downloads only when needed and allowed."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise DatasetUnavailable(f"FER2013 path {p} does not exist")
        return p
    if _has_files(manual_dir()):
        return manual_dir()
    if (hit := cached_version(handle)) is not None:
        return hit
    if not download:
        raise DatasetUnavailable(_unavailable_message(handle, "download=False and no local copy was found"))
    try:
        import kagglehub
        return Path(kagglehub.dataset_download(handle))
    except Exception as e:   # offline, no credentials, unknown handle, HTTP errors: all end the same way
        raise DatasetUnavailable(_unavailable_message(handle, f"{type(e).__name__}: {e}")) from e


def _unavailable_message(handle: str, why: str) -> str:
    return (f"FER2013 ({handle!r}) is not available: {why}.\n"
            f"  - kagglehub caches downloads under {kagglehub_cache_root()} ($KAGGLEHUB_CACHE); it needs network "
            f"access and, for some datasets, Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY).\n"
            f"  - Or place the files by hand in {manual_dir()}: fer2013.csv or icml_face_data.csv, "
            f"or the train/ and test/ folders of a folder release (msambare/fer2013, ananthu017/emotion-detection-fer).\n"
            f"  - Or pass path=... to emolib.data.load('fer2013', path=...).")
