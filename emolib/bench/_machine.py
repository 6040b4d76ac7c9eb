"""Where and when a bench run measured: the machine record of `make bench` and `make bench-peers`."""
from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import torch

from emolib.core import provenance


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average: other processes on the cores disturb every figure."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def machine(wall_s: float, quick: bool, only: list[str] | None, load_at_start: float | None = None) -> dict:
    """The machine and the code a run measured: the page's header."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:                               # not on macOS
        affinity = os.cpu_count()
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), "cpu_affinity": affinity, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "emolib": provenance.__version__,
            "commit": provenance.git_commit(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(wall_s, 1), "quick": quick, "only": only,
            "load_avg_at_start": load_at_start, "load_avg_at_end": load_average()}
