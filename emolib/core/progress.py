"""Progress bars: tqdm.auto (a widget in JupyterLab, text in a terminal), shown when the caller says so.

A headless run (the runner's kernels) turns them off through its run's settings (`TrainConfig.progress`):
tqdm.notebook ignores tqdm's own ``TQDM_DISABLE``, so the switch is an argument, not the environment. Text bars
show on a terminal only: in a pipe or a file (a cluster's job log) their frames would bury the callers' one line
an epoch (tqdm's ``disable=None``).
"""
from __future__ import annotations

from tqdm.auto import tqdm

# tqdm.auto chose the widget (a Jupyter kernel): its output is never a terminal, and is shown all the same.
_WIDGET = any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)


def bar(iterable=None, *, show: bool = True, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled unless `show`, and as text outside a terminal."""
    return tqdm(iterable, disable=True if not show else (False if _WIDGET else None), **kwargs)
