"""Data sources, decoded once into FaceArrays and cached."""
from .arrays import SPLITS, FaceArrays

__all__ = ["FaceArrays", "SPLITS"]
