"""Test isolation: every test writes its data, cache, models and reports under a temporary folder.

Assets (weights, detector files fetched by `make setup`) stay where they are: they are read-only
inputs, resolved once here before the roots move.
"""
import os

import pytest

# Under pytest-xdist each worker gets an equal share of the cores for torch's OpenMP threads, set before anything
# imports torch and inherited by the notebooks and commands the tests start: every worker on every core would
# spin-wait on the others' threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first, so that none starts last and keeps one worker busy alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True, scope="session")
def _isolated_roots(tmp_path_factory):
    from emolib.core import paths
    os.environ["EMOLIB_ASSETS"] = str(paths.assets_dir())
    root = tmp_path_factory.mktemp("emolib_home")
    for var, sub in [("EMOLIB_DATA", "data"), ("EMOLIB_CACHE", "cache"),
                     ("EMOLIB_MODELS", "models"), ("EMOLIB_REPORTS", "reports")]:
        os.environ[var] = str(root / sub)
    yield root


@pytest.fixture
def scratch_home(tmp_path, monkeypatch):
    """A copy of notebooks/ and params/ under a temporary EMOLIB_HOME, with its own reports and models roots."""
    import shutil

    from emolib.core import paths
    home = tmp_path / "home"
    shutil.copytree(paths.home() / "notebooks", home / "notebooks")
    shutil.copytree(paths.home() / "params", home / "params")
    monkeypatch.setenv("EMOLIB_HOME", str(home))
    monkeypatch.setenv("EMOLIB_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("EMOLIB_MODELS", str(tmp_path / "models"))
    return home
