"""Every filesystem location the project uses, in one place, the kinds of run's included.

Roots are functions (not constants) so that an environment variable set after import, as tests
do, is honoured. `EMOLIB_HOME` moves everything; `EMOLIB_DATA`, `EMOLIB_CACHE`, `EMOLIB_MODELS`
and `EMOLIB_REPORTS` move one root each.

Kinds of run, and where each one's outputs live:

- ``published``: `make reproduce` (emolib.research.runner). The only writer of the published reports
  (``<reports>/html|figures|metrics``) and of the profile's checkpoints (``<models>/<profile>/``).
- ``dry-run``: the runner with training and evaluation capped; ``<reports>/dry-run/<profile>/`` and
  ``<models>/dry-run/<profile>/``, same layout, its own index.
- ``scratch``: anything else, e.g. a notebook run cell by cell in JupyterLab. Its figures and metrics go
  to ``<reports>/scratch/<profile>/`` and its checkpoints to ``<models>/scratch/<profile>/`` (both
  git-ignored), so an experiment never overwrites what the published reports show.
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


KINDS = ("published", "dry-run", "scratch")
# Folder names under the reports and models roots: a profile may not be called like one of them.
RESERVED = ("scratch", "dry-run")


def _check_kind(kind: str, profile: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind of run {kind!r}; kinds: {', '.join(KINDS)}")
    if profile in RESERVED:
        raise ValueError(f"a profile may not be named {profile!r}: the name is a folder of the reports root")


def reports_root(kind: str, profile: str) -> Path:
    """Where the finished reports of this kind live (html/, figures/, metrics/, index.html)."""
    _check_kind(kind, profile)
    return reports_dir() if kind == "published" else reports_dir() / kind / profile


def checkpoints_root(kind: str, profile: str) -> Path:
    """Where this kind's training runs write <notebook>/<model>/best.pt."""
    _check_kind(kind, profile)
    return models_dir() / profile if kind == "published" else models_dir() / kind / profile


# --------------------------------------------------------------------------------------------- checkpoints
# Training writes <models>/<profile>/<notebook>/<model>/best.pt (emolib.models.catalog lists them); a checkpoint's
# short name is that path under the models root without /best.pt, e.g. quick/02_cnn_baseline/cnn_fer.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
BEST = "best.pt"


def short_name(path: Path, root: Path | None = None) -> str:
    """``root/quick/02_cnn_baseline/cnn_fer/best.pt`` -> ``quick/02_cnn_baseline/cnn_fer``."""
    rel = Path(path).resolve().relative_to((root or models_dir()).resolve())
    return (rel.parent if rel.name == BEST else rel.with_suffix("")).as_posix()


def candidates(name: str) -> list[Path]:
    """The files a ``--model`` value may mean, in order: the path itself, then (for a relative name) the
    models root's file of that name, with a checkpoint suffix, or a short name's ``best.pt``."""
    out = [Path(name)]
    if not Path(name).is_absolute():
        root = models_dir()
        out += [root / name] + [root / (name + s) for s in CHECKPOINT_SUFFIXES] + [root / name / BEST]
    return out
