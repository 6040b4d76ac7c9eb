"""The two paths as a user runs them: the live loop on 640×480 frames and one still photo of 1920×1280.

Live (`e2e_ms_live_640x480_{1face,4faces}`; their targets: emolib/bench/_page.py): the clips of emolib/bench/e2e.py
(real faces, JPEG-encoded in memory) through the loop `emolib video` / `webcam` run: decode, the live
detector, then `FramePipeline` (crop, classify, track, smooth, draw), with the next frame decoded and
detected in a worker thread (`emolib.inference.prefetch`) while this one is classified. Each stage gets one thread
(torch 1, cv2 1: LIVE_THREADS): on 2 cores they then run side by side instead of contending. Figure: wall time / frames,
best of 3 passes over the clip. `e2e_live_prefetch_speedup_*` is the same loop without the worker, ÷.

Still (`e2e_ms_still_1920x1280`): a real group photo (insightface's t1.jpg, 6 faces, resized to 1920×1280
and JPEG-encoded) through what `emolib predict` does: decode, the still detector (with its fine pass),
classify every face in one batch, draw, with `emolib predict`'s threads (every core).
Median of the repeats.
"""
from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

from emolib.bench.e2e import clip_1face, clip_4faces, encode


def live_ms(recognizer, jpegs: list[np.ndarray], expect_faces: int, prefetch: bool, passes: int = 3) -> float:
    from emolib.inference.prefetch import detect_ahead
    from emolib.inference.video import FramePipeline
    best = float("inf")
    for _ in range(passes + 1):                       # the first pass warms caches and is not counted
        pipeline = FramePipeline(recognizer)
        frames = (cv2.imdecode(buf, cv2.IMREAD_COLOR) for buf in jpegs)
        items = detect_ahead(frames, recognizer.detect_faces) if prefetch else ((f, None) for f in frames)
        found = []
        t0 = time.perf_counter()
        for frame, faces in items:
            _, results = pipeline(frame, faces=faces)
            found.append(len(results))
        best = min(best, (time.perf_counter() - t0) * 1000 / len(jpegs))
        if np.mean([n >= expect_faces for n in found]) < 0.8:
            raise RuntimeError(f"live loop: expected {expect_faces} faces per frame, found {found}")
    return best


STILL = "insightface_t1.jpg"       # a photo of emolib/bench/group_photos.py


def still_photo() -> tuple[np.ndarray, int] | str:
    """(the JPEG, its faces), or the line that says why the photo is missing."""
    from emolib.bench import group_photos
    from emolib.core.images import read_image
    missing = group_photos.fetch()
    if STILL in missing:
        return missing[STILL]
    photo = next(p for p in group_photos.PHOTOS if p.name == STILL)
    image = cv2.resize(read_image(group_photos.cached(photo)), (1920, 1280), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], len(photo.faces)


def still_ms(recognizer, jpeg: np.ndarray, expect_faces: int, repeats: int) -> float:
    from emolib.inference.draw import annotate
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        results = recognizer.recognize(image)
        annotate(image, results)
        if i:
            times.append((time.perf_counter() - t0) * 1000)
        if len(results) != expect_faces:
            raise RuntimeError(f"still photo: expected {expect_faces} faces, found {len(results)}")
    return statistics.median(times)


def run(quick: bool = False) -> dict[str, float]:
    from emolib.core.runtime import cpu_threads
    from emolib.faces.detection import LIVE_THREADS, still_threads
    from emolib.inference.recognizer import EmotionRecognizer
    n = 8 if quick else 40
    out: dict[str, float] = {}
    with cpu_threads(LIVE_THREADS):
        live = EmotionRecognizer.live().warmup()
        for name, clip, faces in (("1face", clip_1face(n), 1), ("4faces", clip_4faces(n), 4)):
            jpegs = encode(clip)
            out[f"e2e_ms_live_640x480_{name}"] = live_ms(live, jpegs, faces, prefetch=True)
            plain = live_ms(live, jpegs, faces, prefetch=False)
            out[f"e2e_live_prefetch_speedup_640x480_{name}"] = plain / out[f"e2e_ms_live_640x480_{name}"]
    still = still_photo()
    if isinstance(still, str):
        return out | {"_skipped": [f"e2e_ms_still_1920x1280: {still}"]}
    with cpu_threads(still_threads()):
        out["e2e_ms_still_1920x1280"] = still_ms(EmotionRecognizer().warmup(), *still, 3 if quick else 10)
    return out | {"_inputs": [STILL]}


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v:.3g}" if not k.startswith("_") else f"{k} = {v}")
