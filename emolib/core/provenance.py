"""Which code made a file: the package version and the checkout's git commit (checkpoints, exports, reports)."""
from __future__ import annotations

import functools
import subprocess

from emolib.core import paths

__version__ = "0.1.0"      # pyproject.toml's version


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checkout's commit (with "-dirty" when it has local changes), or None; never raises."""
    try:
        def git(*args):
            return subprocess.run(["git", *args], cwd=paths.home(), capture_output=True,
                                  text=True, timeout=5).stdout.strip()
        sha = git("rev-parse", "HEAD")
        if not sha:
            return None
        try:
            return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
        except subprocess.TimeoutExpired:
            # A fresh clone's first status runs the notebooks' git filter on each of them: the commit is still known.
            return sha + " (local changes not checked)"
    except Exception:  # noqa: BLE001 - no git, not a checkout, timeout: the commit is optional
        return None


def code_version() -> str:
    """"0.1.0 (git <commit>)", as a report's header shows it."""
    return f"{__version__} (git {git_commit() or 'unknown: not a git checkout'})"
