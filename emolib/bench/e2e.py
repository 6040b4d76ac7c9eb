"""End-to-end latency of the live pipeline on 640×480 frames: decode JPEG → detect → align → classify → draw.

Frames come from a real photo (skimage's astronaut, scikit-image): a short clip
panning and zooming over her, JPEG-encoded in memory so every frame is decoded as a camera or a
file would deliver it. "1face" frames show her alone; "4faces" frames tile four copies (two
mirrored) on one frame, all classified in one batch. Median milliseconds per frame over the clip.
torch and cv2 get one thread each (LIVE_THREADS), as the CLI's live commands run (see `emolib.cli --threads`).
Pure detector timings are in emolib/bench/faces.py (detect_ms_640x480_*), not repeated here.
"""
from __future__ import annotations

import statistics
import time

import cv2
import numpy as np

DETECTORS = ("blazeface", "ssd", "haar")


def astronaut_bgr() -> np.ndarray:
    from skimage import data
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def clip_1face(n: int) -> list[np.ndarray]:
    from emolib.inference.video import pan_zoom_frames
    return pan_zoom_frames(astronaut_bgr(), n, (640, 480), zoom=(1.0, 1.25))


def clip_4faces(n: int) -> list[np.ndarray]:
    """2×2 tiles of 320×240 views of the astronaut's head and shoulders (faces ~30% of a tile wide)."""
    from emolib.inference.video import pan_zoom_frames
    head = astronaut_bgr()[15:270, 55:395]
    cells = pan_zoom_frames(head, n, (320, 240), zoom=(1.0, 1.15))
    return [np.vstack([np.hstack([c, c[:, ::-1]]), np.hstack([c[:, ::-1], c])]) for c in cells]


def encode(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for f in frames]


def time_pipeline(recognizer, jpegs: list[np.ndarray], expect_faces: int, warmup: int = 3) -> dict[str, float]:
    """Median ms per frame of the whole pipeline, and of each stage (measured in the same pass)."""
    from emolib.inference.draw import annotate
    stages: dict[str, list[float]] = {"total": [], "decode": [], "detect": [], "classify": [], "draw": []}
    found = []
    for i, buf in enumerate(list(jpegs[:warmup]) + list(jpegs)):
        t0 = time.perf_counter()
        frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        t1 = time.perf_counter()
        faces = recognizer.detect_faces(frame)
        t2 = time.perf_counter()
        results = recognizer.classify_faces(frame, faces)
        t3 = time.perf_counter()
        annotate(frame, results)
        t4 = time.perf_counter()
        if i < warmup:
            continue
        found.append(len(results))
        for key, dt in zip(stages, (t4 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stages[key].append(dt * 1000)
    # A timing of a pipeline that missed the faces would mislead; extra (false) faces are reported.
    if np.mean([n >= expect_faces for n in found]) < 0.8:
        raise RuntimeError(f"{recognizer.detector}: expected {expect_faces} faces per frame, found {found}")
    return {k: statistics.median(v) for k, v in stages.items()} | {"faces": float(np.mean(found))}


def run(quick: bool = False) -> dict[str, float]:
    from emolib.core.runtime import cpu_threads
    from emolib.faces.detection import LIVE_THREADS
    from emolib.inference.recognizer import EmotionRecognizer

    n = 8 if quick else 40
    clips = {"1face": (encode(clip_1face(n)), 1), "4faces": (encode(clip_4faces(n)), 4)}
    out: dict[str, float] = {}
    with cpu_threads(LIVE_THREADS):
        for detector in DETECTORS:
            recognizer = EmotionRecognizer(detector=detector).warmup()
            for name, (jpegs, faces) in clips.items():
                t = time_pipeline(recognizer, jpegs, faces)
                out[f"e2e_ms_640x480_{name}_{detector}"] = t["total"]
                out[f"e2e_faces_found_640x480_{name}_{detector}"] = t["faces"]
                if detector == "blazeface":          # where the time goes, for the default pipeline
                    for stage in ("decode", "detect", "classify", "draw"):
                        out[f"e2e_stage_ms_640x480_{name}_blazeface_{stage}"] = t[stage]
    out["e2e_fps_640x480_1face_blazeface"] = 1000.0 / out["e2e_ms_640x480_1face_blazeface"]
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v:.3g}")
