"""GPU utilisation sampled in a background thread while a benchmark loop runs (`emolib.bench.train`).

The reading comes from ``torch.cuda.utilization`` (needs pynvml: ``pip install nvidia-ml-py``), else from
``nvidia-smi`` when it is on PATH (a process per reading: sampled less often, and it takes some CPU from the loop),
else there is none and `reason` says why. Utilisation is the share of the last sampling period in which a kernel
ran: a loop that waits on the host shows as a low figure.
"""
from __future__ import annotations

import importlib.util
import shutil
import statistics
import subprocess
import threading

import torch

PYNVML_PERIOD_S = 0.05
NVIDIA_SMI_PERIOD_S = 0.25


def _nvidia_smi_reader(index: int):
    def read() -> float:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                              "-i", str(index)], capture_output=True, text=True, timeout=5, check=True).stdout
        return float(out.strip().splitlines()[0])
    return read


def _reader(device: torch.device):
    """(read, method, period_s, reason): how to read this device's utilisation, or why it cannot be read."""
    if device.type != "cuda":
        return None, None, None, f"no GPU: the run is on {device.type}"
    if importlib.util.find_spec("pynvml") is not None:
        return (lambda: float(torch.cuda.utilization(device))), "torch.cuda.utilization (pynvml)", PYNVML_PERIOD_S, None
    if shutil.which("nvidia-smi"):
        return _nvidia_smi_reader(device.index or 0), "nvidia-smi", NVIDIA_SMI_PERIOD_S, None
    return None, None, None, "pynvml is not installed (pip install nvidia-ml-py) and nvidia-smi is not on PATH"


class UtilisationSampler:
    """Samples under a tag while one is set (`tag`), from start() to stop(); `mean(tag)` averages a tag's samples.

    Off CUDA, or with no way to read the GPU, it samples nothing and `reason` says why.
    """

    def __init__(self, device: torch.device):
        self._read, self.method, self.period_s, self.reason = _reader(device)
        self.tag: str | None = None
        self.samples: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "UtilisationSampler":
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, name="gpu-utilisation", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            tag = self.tag
            if tag is None:
                continue
            try:
                value = self._read()
            except Exception as e:  # noqa: BLE001 - a failed reading ends the sampling, not the benchmark
                self.reason, self._read = f"reading the utilisation failed: {type(e).__name__}: {e}", None
                return
            if self.tag == tag:          # the tag may have changed while reading
                self.samples.setdefault(tag, []).append(value)

    def mean(self, tag: str) -> float | None:
        got = self.samples.get(tag)
        return statistics.fmean(got) if got else None

    def __enter__(self) -> "UtilisationSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

