"""Errors raised by the data sources: a bad file, a dataset that cannot be reached, options a source does not take."""
from __future__ import annotations

from emolib.core.errors import EmolibError


class DataFormatError(EmolibError, ValueError):
    """A source file or folder is not in the expected format; the message names the file, row and problem."""


class DatasetUnavailable(EmolibError, RuntimeError):
    """The dataset is neither local nor downloadable right now; the message says where to put it by hand."""


class DataOptionsError(EmolibError, ValueError):
    """A source asked for with options or a path it does not take (or without the path it needs)."""
