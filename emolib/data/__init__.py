"""Data sources, decoded once into FaceArrays and cached.

`load(source, path, **options)` is the one entry point ("synthetic", "fer2013", "folder", "ferplus");
`find_quality_issues(arrays)` reports blank images and exact duplicates. Both are imported lazily
so that `emolib.data.arrays` stays cheap to import (no OpenCV).
"""
from emolib.data.arrays import SPLITS, FaceArrays
from emolib.data.errors import DataFormatError, DataOptionsError, DatasetUnavailable

__all__ = ["FaceArrays", "SPLITS", "load", "find_quality_issues", "DataFormatError", "DataOptionsError", "DatasetUnavailable"]


def __getattr__(name):
    if name == "load":
        from emolib.data.sources import load
        return load
    if name == "find_quality_issues":
        from emolib.data.quality import find_quality_issues
        return find_quality_issues
    raise AttributeError(f"module 'emolib.data' has no attribute {name!r}")
