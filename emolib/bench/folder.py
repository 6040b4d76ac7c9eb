"""`emolib predict DIR` on a folder of photos: photos/s one file after another and overlapped, in the same run.

The folder: the cached group photos of emolib/bench/group_photos.py (one to six faces, 548×342 to 1920×1080) and
single-face 640×480 portraits (frames of the astronaut clip of emolib/bench/e2e.py, JPEG quality 90), copied
into one folder and read from disk as `emolib predict` reads them; no annotated copies.

- ``folder_photos_per_s_one_by_one``: `emolib.inference.batch.one_by_one` with every core for torch and cv2 (the
  loop `emolib predict` ran before the pipeline: read, detect, classify, next file);
- ``folder_photos_per_s_overlapped``: `emolib.inference.batch.overlapped` as `emolib predict` runs it on several
  files: one worker a core, one thread a stage, the recognizer built under one thread;
- ``folder_overlap_speedup``: the second ÷ the first.

Each figure: photos ÷ wall seconds of a whole pass over the folder, best of the passes after a warm-up one, the
two paths taking turns so that a busy spell of the machine hits both. Both paths must find the same faces with
the same labels, or the module fails.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import cv2

from emolib.bench import group_photos
from emolib.bench.e2e import clip_1face


def build_folder(folder: Path, portraits: int) -> tuple[list[str], list[str]]:
    """Copy the cached group photos and write `portraits` portraits into `folder`: (what it holds, what is missing)."""
    skipped = list(group_photos.fetch().values())
    inputs = []
    for photo, path in group_photos.available():
        shutil.copy(path, folder / photo.name)
        inputs.append(photo.name)
    for i, frame in enumerate(clip_1face(portraits)):
        cv2.imwrite(str(folder / f"portrait_{i:02d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return inputs + [f"{portraits} portraits 640×480 (portrait_*.jpg: the astronaut clip)"], skipped


def one_pass(run, items) -> tuple[float, list]:
    """(photos/s, [(file, labels)]) of one pass over `items`."""
    t0 = time.perf_counter()
    got = [(r.path.name, r.error, [f.label for f in r.faces]) for r in run(items)]
    return len(items) / (time.perf_counter() - t0), got


def run(quick: bool = False) -> dict[str, float]:
    from emolib.core.images import iter_image_files
    from emolib.core.runtime import cpu_threads
    from emolib.faces.detection import still_threads
    from emolib.inference import batch
    from emolib.inference.recognizer import EmotionRecognizer

    cores = still_threads()
    passes = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        inputs, skipped = build_folder(Path(tmp), 8 if quick else 24)
        items = iter_image_files([tmp])
        with cpu_threads(cores):
            plain = EmotionRecognizer().warmup()
        with cpu_threads(1):
            piped = EmotionRecognizer().warmup()

        def one_by_one(files):
            with cpu_threads(cores):
                yield from batch.one_by_one(plain, files)

        def overlapped(files):
            return batch.overlapped(piped, files, workers=cores)

        best = {"one_by_one": 0.0, "overlapped": 0.0}
        seen = {}
        for i in range(passes + 1):                         # the first pass warms caches and is not counted
            for name, path in (("one_by_one", one_by_one), ("overlapped", overlapped)):
                rate, seen[name] = one_pass(path, items)
                if i:
                    best[name] = max(best[name], rate)
    if seen["one_by_one"] != seen["overlapped"]:
        raise RuntimeError(f"the overlapped pipeline's faces differ from the one-by-one loop's: {seen}")
    if errors := [f"{name}: {error}" for name, error, _ in seen["overlapped"] if error]:
        raise RuntimeError(f"unreadable benchmark photos: {errors}")
    out = {f"folder_photos_per_s_{k}": v for k, v in best.items()}
    out["folder_overlap_speedup"] = out["folder_photos_per_s_overlapped"] / out["folder_photos_per_s_one_by_one"]
    out["folder_photos_count"] = float(len(items))
    out["folder_faces_found"] = float(sum(len(labels) for _, _, labels in seen["overlapped"]))
    return out | {"_inputs": inputs, "_skipped": skipped}


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v:.3g}" if not k.startswith("_") else f"{k} = {v}")
