"""Every filesystem location the project uses, in one place.

Roots are functions (not constants) so that an environment variable set after import, as tests
do, is honoured. `EMOLIB_HOME` moves everything; `EMOLIB_DATA`, `EMOLIB_CACHE`, `EMOLIB_MODELS`
and `EMOLIB_REPORTS` move one root each.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]      # emolib/core/paths.py -> the checkout


def home() -> Path:
    """The project root: $EMOLIB_HOME, else this checkout (editable install), else the working directory."""
    if env := os.environ.get("EMOLIB_HOME"):
        return Path(env).expanduser()
    if (_PACKAGE_PARENT / "pyproject.toml").exists():
        return _PACKAGE_PARENT
    return Path.cwd()


def shown(path: Path) -> str:
    """A path as a user finds it: relative to the project root when it is inside it."""
    try:
        return str(Path(path).relative_to(home()))
    except ValueError:
        return str(path)


def _root(var: str, default: Path) -> Path:
    return Path(os.environ[var]).expanduser() if os.environ.get(var) else default


def data_dir() -> Path:
    return _root("EMOLIB_DATA", home() / "data")


def raw_dir() -> Path:
    """User-provided data; never modified by emolib."""
    return data_dir() / "raw"


def cache_dir() -> Path:
    """Derived, rebuildable files: decoded arrays, assets."""
    return _root("EMOLIB_CACHE", data_dir() / "cache")


def assets_dir() -> Path:
    """Weights and detector files resolved by `emolib.core.assets` ($EMOLIB_ASSETS moves it alone)."""
    return _root("EMOLIB_ASSETS", cache_dir() / "assets")


def models_dir() -> Path:
    """Checkpoints written by training runs."""
    return _root("EMOLIB_MODELS", home() / "models")


def reports_dir() -> Path:
    return _root("EMOLIB_REPORTS", home() / "reports")


def notebooks_dir() -> Path:
    return home() / "notebooks"


def params_dir() -> Path:
    return home() / "params"


def opencv_doc_data() -> Path:
    """Where Debian's opencv-doc package installs OpenCV's sample images (messi5.jpg), read-only."""
    return Path("/usr/share/doc/opencv-doc/examples/data")
