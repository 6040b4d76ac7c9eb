"""Errors raised by the data sources: a bad file and a dataset that cannot be reached."""
from __future__ import annotations


class DataFormatError(ValueError):
    """A source file or folder is not in the expected format; the message names the file, row and problem."""


class DatasetUnavailable(RuntimeError):
    """The dataset is neither local nor downloadable right now; the message says where to put it by hand."""
