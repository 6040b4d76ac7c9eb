"""Detect the next video frame while this one is classified: the live loop's second core.

cv2's DNN (the detectors) and torch (the classifier) both release the GIL while they compute, so one
worker thread that reads and detects frame i+1 overlaps the main thread's classification, tracking and
drawing of frame i. The results are the ones the plain loop gives (a test compares labels and
probabilities): only the order of work changes, and the detector never runs twice at once.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np


def detect_ahead(frames: Iterable[np.ndarray], detect: Callable[[np.ndarray], list]
                 ) -> Iterator[tuple[np.ndarray, list]]:
    """(frame, detect(frame)) for every frame, the next one read and detected in a worker thread while the
    caller handles the current one. Closing the generator (e.g. the loop breaks) waits for the worker."""
    source = iter(frames)

    def step():
        frame = next(source, None)
        return None if frame is None else (frame, detect(frame))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="emolib-detect") as pool:
        pending = pool.submit(step)
        while (item := pending.result()) is not None:
            pending = pool.submit(step)
            yield item


def read_frames(cap, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Frames from an opened cv2.VideoCapture until it ends (or `max_frames`)."""
    n = 0
    while max_frames is None or n < max_frames:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield frame
        n += 1
