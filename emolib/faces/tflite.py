"""The TFLite face-detector networks (MediaPipe's BlazeFace), run by LiteRT or by OpenCV's cv2.dnn, and handed
out to threads one at a time.

LiteRT (`ai-edge-litert`, Google's runtime for TFLite models, with its XNNPACK kernels) is the default where
its wheel exists (Linux, macOS): measured here it runs the full-range model in 2.7 ms against cv2.dnn's
5.7 ms, and the short-range one in 0.9 ms against 1.7 ms, on one thread each. `runtime="opencv"` picks
cv2.dnn, which is also what runs where LiteRT is not installed; `NetPool.runtime` says which one runs, and
tests/test_faces.py checks that both find the same faces.
"""
from __future__ import annotations

import importlib.util
import queue
import threading

import cv2
import numpy as np

from ..quiet import captured_native_stderr

RUNTIMES = ("litert", "opencv")


def default_runtime() -> str:
    return "litert" if importlib.util.find_spec("ai_edge_litert") else "opencv"


class _LiteRT:
    def __init__(self, path: str, outputs: list[str], threads: int):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        index = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.outputs = [index[name] for name in outputs]

    def __call__(self, square_bgr: np.ndarray) -> list[np.ndarray]:
        # NHWC, RGB in [-1, 1]
        x = cv2.cvtColor(square_bgr, cv2.COLOR_BGR2RGB)[None].astype(np.float32) * (1 / 127.5) - 1.0
        self.interpreter.set_tensor(self.input, x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]


class _OpenCV:
    def __init__(self, path: str, outputs: list[str], threads: int):     # cv2.dnn runs on cv2's own thread pool
        self.net = cv2.dnn.readNetFromTFLite(path)
        self.outputs = outputs

    def __call__(self, square_bgr: np.ndarray) -> list[np.ndarray]:
        n = square_bgr.shape[0]
        # RGB in [-1, 1]; OpenCV's TFLite importer takes NCHW.
        self.net.setInput(cv2.dnn.blobFromImage(square_bgr, 1 / 127.5, (n, n), (127.5, 127.5, 127.5), swapRB=True))
        return self.net.forward(self.outputs)


class NetPool:
    """Instances of one network (`outputs`: its output tensors, by name), each used by one thread at a time:
    neither runtime's object may run two inputs at once. Calling the pool runs one square BGR uint8 input.
    `threads`: the threads each LiteRT instance runs on (cv2.dnn's take cv2's thread count)."""

    def __init__(self, path: str, outputs: list[str], runtime: str | None = None, threads: int = 1):
        self.runtime = runtime or default_runtime()
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown detector runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        self.path, self.outputs, self.threads = path, outputs, threads
        self._make = lambda: (_LiteRT if self.runtime == "litert" else _OpenCV)(path, outputs, threads)
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._made = 0
        self._lock = threading.Lock()
        self.reserve(1)                               # loaded now: a bad file fails here, not in a worker

    def reserve(self, n: int) -> None:
        """At least `n` instances, made in the calling thread. LiteRT announces its XNNPACK delegate on the
        process's stderr each time; that line is caught here."""
        with self._lock:
            while self._made < n:
                with captured_native_stderr():
                    self._free.put(self._make())
                self._made += 1

    def __call__(self, square_bgr: np.ndarray) -> list[np.ndarray]:
        net = self._free.get()
        try:
            return net(square_bgr)
        finally:
            self._free.put(net)
