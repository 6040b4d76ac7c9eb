"""Progress bars: tqdm.auto (a widget in JupyterLab, text in a terminal), shown when the caller says so.

A headless run (the runner's kernels) turns them off through its run's settings (`TrainConfig.progress`):
tqdm.notebook ignores tqdm's own ``TQDM_DISABLE``, so the switch is an argument, not the environment.
"""
from __future__ import annotations

from tqdm.auto import tqdm


def bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled unless `show`."""
    return tqdm(iterable, disable=not show, **kwargs)
