"""Face detection speed: median milliseconds per 640×480 frame for each detector, and one crop_face."""
from __future__ import annotations

import statistics
import time

import cv2
import numpy as np


def astronaut_frame() -> np.ndarray:
    """A 640×480 BGR frame: skimage's astronaut photo (scikit-image) scaled to 480×480,
    edges replicated to 640 wide; one ~85 px face, the webcam case."""
    from skimage import data
    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480), interpolation=cv2.INTER_AREA)
    return cv2.copyMakeBorder(face, 0, 0, 80, 80, cv2.BORDER_REPLICATE)


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(quick: bool = False) -> dict[str, float]:
    from emolib.faces import detect
    from emolib.faces.align import crop_face

    frame = astronaut_frame()
    repeats = 5 if quick else 40
    out: dict[str, float] = {}
    for name in ["haar", "ssd", "blazeface", "blazeface_full"]:
        if not detect(frame, name):      # a figure for a detector that finds nothing would mislead
            raise RuntimeError(f"{name} found no face on the benchmark frame")
        out[f"detect_ms_640x480_{name}"] = median_ms(lambda: detect(frame, name), repeats)
    out["detect_speedup_blazeface_vs_ssd"] = out["detect_ms_640x480_ssd"] / out["detect_ms_640x480_blazeface"]
    # The still-photo detector on one large photo (its fine pass runs here; group_photos.py has the recall).
    still = cv2.resize(frame, (1920, 1280), interpolation=cv2.INTER_LINEAR)
    out["detect_ms_1920x1280_blazeface_full"] = median_ms(lambda: detect(still, "blazeface_full"), max(3, repeats // 4))
    face = detect(frame, "blazeface")[0]
    out["crop_face_ms_48"] = median_ms(lambda: crop_face(frame, face, size=48), repeats * 5)
    return out
