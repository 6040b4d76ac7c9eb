"""Test isolation: every test writes its data, cache, models and reports under a temporary folder.

Assets (weights, detector files fetched by `make setup`) stay where they are: they are read-only
inputs, resolved once here before the roots move.
"""
import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_roots(tmp_path_factory):
    from emolib import paths
    os.environ["EMOLIB_ASSETS"] = str(paths.assets_dir())
    root = tmp_path_factory.mktemp("emolib_home")
    for var, sub in [("EMOLIB_DATA", "data"), ("EMOLIB_CACHE", "cache"),
                     ("EMOLIB_MODELS", "models"), ("EMOLIB_REPORTS", "reports")]:
        os.environ[var] = str(root / sub)
    yield root
