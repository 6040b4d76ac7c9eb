"""The TFLite face-detector networks (MediaPipe's BlazeFace), run by LiteRT or by OpenCV's cv2.dnn, at their
trained input size or resized to a larger one, and handed out to threads one at a time.

LiteRT (`ai-edge-litert`, Google's runtime for TFLite models, with its XNNPACK kernels) is the default where
its wheel exists (Linux, macOS): it runs both models faster than cv2.dnn on one thread (docs/benchmarks.md,
`detect_ms_*`). `runtime="opencv"` picks
cv2.dnn, which is also what runs where LiteRT is not installed; `NetPool.runtime` says which one runs, and
tests/test_faces.py checks that both find the same faces.
"""
from __future__ import annotations

import importlib.util
import queue
import threading
from functools import lru_cache, partial

import cv2
import numpy as np

from emolib.core.quiet import captured_native_stderr

RUNTIMES = ("litert", "opencv")


def default_runtime() -> str:
    return "litert" if importlib.util.find_spec("ai_edge_litert") else "opencv"


@lru_cache(maxsize=None)
def resized_model(path: str, height: int, width: int) -> bytes:
    """The TFLite file at `path` with its input resized to height×width, for a fully convolutional network such
    as BlazeFace: every layer follows the input's size except RESIZE_BILINEAR, whose output size is a constant
    of the file; those constants are scaled in place (same bytes, same layout). height and width must be
    multiples of the network's total stride (BlazeFace: 32). Raises ValueError otherwise."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator, Model  # the flatbuffer schema, in LiteRT's wheel
    with open(path, "rb") as f:
        data = bytearray(f.read())
    model = Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    shape = graph.Tensors(graph.Inputs(0)).ShapeAsNumpy()      # views into `data`: writing them edits the file
    side = int(shape[1])
    resizes = []                   # (its size constant, the stride of its input map)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == BuiltinOperator.RESIZE_BILINEAR:
            size = model.Buffers(graph.Tensors(op.Inputs(1)).Buffer()).DataAsNumpy().view(np.int32)
            resizes.append((size, side // int(graph.Tensors(op.Inputs(0)).ShapeAsNumpy()[1])))
    stride = max((s for _, s in resizes), default=1)
    if height % stride or width % stride:
        raise ValueError(f"{path}: input {height}×{width} is not a multiple of the network's stride {stride}")
    for size, _ in resizes:
        out_stride = side // int(size[0])
        size[:] = (height // out_stride, width // out_stride)
    shape[1:3] = (height, width)
    return bytes(data)


class _LiteRT:
    def __init__(self, path: str, outputs: list[str], threads: int, shape: tuple[int, int] | None):
        from ai_edge_litert.interpreter import Interpreter
        if shape is None:
            self.interpreter = Interpreter(model_path=path, num_threads=threads)
        else:
            self.interpreter = Interpreter(model_content=resized_model(path, *shape), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        index = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.outputs = [index[name] for name in outputs]

    def __call__(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        # NHWC, RGB in [-1, 1], written straight into the interpreter's input tensor: the same float32 values as
        # set_tensor of `rgb * (1 / 127.5) - 1`, without its three temporaries and the copy (on the fine pass's
        # input that was several times the arithmetic itself). The view must be gone before invoke(), which
        # refuses to run while numpy holds the interpreter's memory.
        x = self.interpreter.tensor(self.input)()
        np.multiply(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB), np.float32(1 / 127.5), out=x[0], dtype=np.float32)
        x -= np.float32(1.0)
        del x
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]


class _OpenCV:
    def __init__(self, path: str, outputs: list[str], threads: int, shape: tuple[int, int] | None):
        # cv2.dnn runs on cv2's own thread pool: `threads` is cv2's setting
        model = path if shape is None else np.frombuffer(resized_model(path, *shape), np.uint8)
        self.net = cv2.dnn.readNetFromTFLite(model)
        self.outputs = outputs

    def __call__(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        h, w = image_bgr.shape[:2]
        # RGB in [-1, 1]; OpenCV's TFLite importer takes NCHW.
        self.net.setInput(cv2.dnn.blobFromImage(image_bgr, 1 / 127.5, (w, h), (127.5, 127.5, 127.5), swapRB=True))
        return self.net.forward(self.outputs)


class NetPool:
    """Instances of one network (`outputs`: its output tensors, by name), each used by one thread at a time:
    neither runtime's object may run two inputs at once. Calling the pool runs one BGR uint8 input of the
    network's size: as trained, or `shape` (height, width; see `resized_model`). `threads`: the threads each
    LiteRT instance runs on (cv2.dnn's take cv2's thread count)."""

    def __init__(self, path: str, outputs: list[str], runtime: str | None = None, threads: int = 1,
                 shape: tuple[int, int] | None = None):
        self.runtime = runtime or default_runtime()
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown detector runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        # a partial, not a lambda over self: a pool that is dropped frees its networks at once (no cycle to collect)
        self._make = partial(_LiteRT if self.runtime == "litert" else _OpenCV, path, outputs, threads, shape)
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

    def __call__(self, image_bgr: np.ndarray) -> list[np.ndarray]:
        # One more instance when every one is busy: threads that detect files side by side (emolib.inference.batch)
        # would otherwise wait for each other on photos of one size. At most one per thread that calls at once.
        try:
            net = self._free.get_nowait()
        except queue.Empty:
            self.reserve(self._made + 1)
            net = self._free.get()
        try:
            return net(image_bgr)
        finally:
            self._free.put(net)
