"""Many image files through the recognizer: one after another, or overlapped with faces batched across files.

`one_by_one` is the plain loop: read and decode a file, detect its faces, classify them, then the next file. Each
step waits for the one before, so on a few cores most of them idle: decoding and the classifier's small forward
passes run on one thread, and a modest photo's detector layers are too little work to split across cores.

`overlapped` gives the same results (same order, same faces and labels) with the work arranged for the cores:

- ``workers`` threads (default: one per core) each take a whole file: read and decode it, detect its faces and
  cut their crops. Pillow's and OpenCV's decoders and the detector's networks release the GIL, so several files
  are decoded and detected at once, one core each, which splits the work more evenly than every core on one file.
- the calling thread takes the detected files in input order, stacks the crops of every file that is ready (one
  file at least, `batch_faces` faces at most, never waiting for a file still in a worker) and classifies them in
  one forward pass, while the workers go on with the next files; then it yields each file's results.

Threads: while `overlapped` runs, torch and cv2 (so the detector) get one thread each: ``workers`` threads and the
classifier then ask for about as many cores as there are. More would stall each other (a stage's thread pool
waits at every layer for its slowest thread, and a thread another one pushed off its core is slow). An ONNX
Runtime session keeps the thread count it was built with, so build the recognizer under
``emolib.core.runtime.cpu_threads(1)`` too (`emolib predict` does).

Memory: at most ``in_flight`` decoded images are held at once (being read or detected, waiting for the
classifier, or just classified); the next file is read only when one has left.

Detectors: BlazeFace gives each thread a network of its own (emolib.faces.tflite.NetPool), so files are detected
side by side; SSD's cv2.dnn network and the Haar cascade keep state between calls, so with them one file is
detected at a time (a lock) while the other workers decode. A file that cannot be read gets its error in its
place and the others go on. Probabilities are the classifier's on a batch of other files' faces as well: the
same to float32 rounding (tests/test_predict_pipeline.py compares both paths).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from emolib.core.images import ImageReadError, read_image
from emolib.core.runtime import cpu_threads

# Detectors whose object several threads may run at once (emolib.faces: BlazeFace's NetPool hands out networks).
PARALLEL_DETECTORS = frozenset({"blazeface", "blazeface_full"})
BATCH_FACES = 64


@dataclass
class FileFaces:
    """One input file's outcome. image: BGR uint8 as read (None when unreadable); faces: FaceResult list;
    error: why the file could not be read (one line), else None; latency_ms: detection and classification of
    this file (not its reading; overlapped: its share of its batch's forward pass, by faces), None on an error."""
    path: Path
    image: np.ndarray | None
    faces: list
    error: str | None = None
    latency_ms: float | None = None


def _read(item: Path | ImageReadError) -> tuple[np.ndarray | None, str | None]:
    if isinstance(item, ImageReadError):          # iter_image_files: a missing path, a folder without images
        return None, item.reason
    try:
        return read_image(item), None
    except ImageReadError as e:
        return None, e.reason


def _path(item: Path | ImageReadError) -> Path:
    return item.path if isinstance(item, ImageReadError) else Path(item)


def one_by_one(recognizer, items: Iterable[Path | ImageReadError]) -> Iterator[FileFaces]:
    """FileFaces for each item (a file, or the ImageReadError of `iter_image_files`), one file after another."""
    for item in items:
        image, error = _read(item)
        if error is not None:
            yield FileFaces(_path(item), None, [], error)
            continue
        t0 = time.perf_counter()
        faces = recognizer.recognize(image)
        yield FileFaces(_path(item), image, faces, None, (time.perf_counter() - t0) * 1000)


@dataclass
class _Detected:
    file: FileFaces            # faces: the detector's (emolib.faces.Face) until classified
    crops: np.ndarray | None
    detect_ms: float = 0.0


def _detect(recognizer, item, lock) -> _Detected:
    """A worker's part of one file: read, detect, crop."""
    from emolib.faces.detection import as_bgr
    image, error = _read(item)
    if error is not None:
        return _Detected(FileFaces(_path(item), None, [], error), None)
    with lock:
        t0 = time.perf_counter()
        faces = recognizer.detect_faces(as_bgr(image))
    crops = recognizer.face_crops(as_bgr(image), faces) if faces else None
    return _Detected(FileFaces(_path(item), image, faces), crops, (time.perf_counter() - t0) * 1000)


def _classify(recognizer, batch: list[_Detected]) -> Iterator[FileFaces]:
    """Every face of `batch` in one forward pass, then each file with its FaceResults, in order."""
    counts = [0 if d.crops is None else len(d.crops) for d in batch]
    total = sum(counts)
    t0 = time.perf_counter()
    probs = recognizer.predict_crops(np.concatenate([d.crops for d in batch if d.crops is not None])) if total else None
    forward_ms = (time.perf_counter() - t0) * 1000
    start = 0
    for d, n in zip(batch, counts):
        if d.file.error is None:
            d.file.faces = recognizer.face_results(d.file.faces, probs[start:start + n]) if n else []
            d.file.latency_ms = d.detect_ms + (forward_ms * n / total if total else 0.0)
        start += n
        yield d.file


def overlapped(recognizer, items: Iterable[Path | ImageReadError], *, workers: int = 2,
               in_flight: int | None = None, batch_faces: int = BATCH_FACES) -> Iterator[FileFaces]:
    """What `one_by_one` yields, with files read and detected by `workers` threads while this one classifies the
    faces of the files before them, batched across files (the module's docstring says how and why).

    in_flight: decoded images held at most (default 2 × workers + 2, at least workers + 1). batch_faces: faces per
    forward pass at most (a file with more goes alone). Closing the generator early waits for the files in work.
    """
    workers = max(1, int(workers))
    in_flight = max(workers + 1, in_flight or 2 * workers + 2)
    lock = contextlib.nullcontext() if recognizer.detector in PARALLEL_DETECTORS else threading.Lock()
    source = iter(items)
    window: deque[Future] = deque()          # files submitted to the workers, in input order
    with cpu_threads(1), ThreadPoolExecutor(workers, thread_name_prefix="emolib-predict") as pool:
        def top_up(held: int) -> None:
            while len(window) + held < in_flight and (item := next(source, None)) is not None:
                window.append(pool.submit(_detect, recognizer, item, lock))

        try:
            top_up(0)
            while window:
                batch = [window.popleft().result()]          # the next file in order: wait for it
                while window and window[0].done() and sum(len(d.file.faces) for d in batch) < batch_faces:
                    batch.append(window.popleft().result())
                top_up(len(batch))                           # the workers go on while this batch is classified
                yield from _classify(recognizer, batch)
                top_up(0)
        finally:
            for future in window:
                future.cancel()
