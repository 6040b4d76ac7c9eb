"""Progress bars: tqdm.auto (a widget in JupyterLab, text in a terminal), off in headless runs.

The runner sets ``TQDM_DISABLE=1`` for the kernels it starts (a bar in a static report is noise).
Plain tqdm honours that variable itself, but tqdm.notebook sets ``disable`` explicitly and so ignores
it; `bar` reads it for every kind of bar, so one switch turns them all off.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm

DISABLE_ENV = "TQDM_DISABLE"


def enabled() -> bool:
    """False when ``TQDM_DISABLE`` is set to anything but "" or "0" (tqdm's own reading: any non-empty value)."""
    return os.environ.get(DISABLE_ENV, "") in ("", "0")


def bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled unless `show` and bars are `enabled`."""
    return tqdm(iterable, disable=not (show and enabled()), **kwargs)
