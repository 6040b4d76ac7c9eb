"""docs/benchmarks.md, generated from one bench JSON (`python -m emolib.bench --markdown [JSON]`), never edited by hand.

What each figure measures and its target live here, in `FIGURES`; the measured values only in the JSON. The same
JSON gives the same page byte for byte: nothing here reads the clock, the machine or the environment.
"""
from __future__ import annotations

import math
import re
from fnmatch import fnmatchcase

REFRESH = "python -m emolib.bench --markdown"

# (figure-name pattern, what it measures, target). The first pattern that matches a name describes it, so a
# specific name comes before the pattern that would also match it. A figure no pattern matches still gets a row.
FIGURES: tuple[tuple[str, str, str], ...] = (
    # data_io
    ("csv_parse_s_*", "parse a FER2013-format CSV of 35,887 rows (`_fer2013_tenth`: a tenth of it, `--quick`)", ""),
    ("cache_load_s_*", "load the same rows from their decoded `.npz` cache (fingerprint checked)", "< 1 s"),
    ("csv_parse_vs_cache_load_ratio", "CSV parse time ÷ cache load time", ""),
    # near_duplicates
    ("near_dup_recall_planted", "share of the planted near-duplicate pairs the audit reports (`make_faces` with "
     "texture in FER2013's class counts, 35,887 images; copies re-encoded, shifted, re-toned, mirrored, blurred or "
     "all of JPEG, shift and tone, across and within splits)", "≥ 0.95"),
    ("near_dup_recall_*", "the same, for the planted pairs of one kind", ""),
    ("near_dup_precision_reported", "share of the reported pairs that were planted", "≥ 0.99"),
    ("near_dup_unplanted_share_with_partner", "share of the images in no planted pair that the audit gives a "
     "partner", "≤ 0.005"),
    ("near_dup_audit_s_*", "seconds of `emolib.data.near_duplicates.audit` over all the images (hashes of every "
     "shift and mirror, the band search, the pixel check, the random-pair sample)", "≤ 30 s (35,887 images)"),
    # data_pipeline
    ("synthetic_faces_per_s", "synthetic faces generated (drawing, masks, splits)", "≥ 5,000"),
    ("loader_batches_per_s_cached", "augmented training batches/s of FaceLoader (batch 64, 48 px, 1 channel)", ""),
    ("loader_batches_per_s_imagefolder", "the same from torchvision's `ImageFolder` + PIL transforms on the same "
     "images as PNG files", ""),
    ("loader_batches_per_s_imagefolder_2workers", "the same `ImageFolder` with 2 DataLoader workers", ""),
    ("loader_speedup_vs_imagefolder", "augmented training batches/s, FaceLoader ÷ `ImageFolder` + PIL transforms "
     "on the same PNGs", "≥ 5"),
    ("loader_speedup_vs_imagefolder_2workers", "the same against `ImageFolder` with 2 DataLoader workers", ""),
    # train
    ("train_img_per_s_*_emolib", "training images/s of emolib's loop (`train_one_epoch`: augmented batches from a "
     "FaceLoader, the recipe's step, bookkeeping) on the quick profile's model of that run, built as its notebook "
     "builds it, median of timed blocks", ""),
    ("train_img_per_s_*_bare", "the same step on one pre-made batch (no loader, no bookkeeping), same model and "
     "shapes", ""),
    ("train_emolib_vs_bare_ratio_*", "emolib's loop ÷ the bare loop, images/s (`python -m emolib.bench.train "
     "--device cuda --profile fer2013` measures the GPU recipes: docs/training.md)", "≥ 0.8 on a GPU"),
    ("eval_img_per_s_*", "images/s of the evaluation pass (`evaluate_loss` at the validation batch) of that run", ""),
    # train, before the runs above: a whole step (batch to AdamW) of a model alone
    ("train_img_per_s_*", "training images/s at batch 64 with augmentation: a full step (batch, forward, "
     "cross-entropy, backward, AdamW), median step", ""),
    # backends (before classifier: the same prefix)
    ("classifier_faces_per_s_bs*_*_onnx", "the same model exported (`emolib export`) and run by ONNX Runtime, "
     "same input and threads", ""),
    ("classifier_onnx_vs_torch_bs*", "ONNX Runtime's faces/s ÷ PyTorch's (> 1: ONNX Runtime is faster)",
     "ONNX Runtime is the default only where it wins on speed and parity"),
    ("export_parity_max_abs_prob_diff_*", "largest |Δ probability| between PyTorch and the ONNX export, "
     "on real face crops", ""),
    ("e2e_ms_640x480_*_torch", "the live pipeline with the default model on PyTorch (same clip and run as `_onnx`)", ""),
    ("e2e_ms_640x480_*_onnx", "the live pipeline with the default model on ONNX Runtime", ""),
    # classifier
    ("classifier_faces_per_s_bs64_fer2013-mini-xception", "inference faces/s (BatchNorm folded, channels-last)",
     "≥ 1,000"),
    ("classifier_faces_per_s_bs64_cnn_fer", "inference faces/s (BatchNorm folded, channels-last)", "≥ 1,000"),
    ("classifier_faces_per_s_bs*", "inference faces/s (BatchNorm folded, channels-last)", ""),
    ("classifier_prepare_speedup_bs64_*", "faces/s after `prepare_for_inference` ÷ the plain eval-mode model, "
     "batch 64", ""),
    # faces
    ("detect_ms_640x480_*", "face detection on a 640×480 frame with one face (skimage's astronaut)", ""),
    ("detect_ms_1920x1280_blazeface_full", "the still-photo detector on a 1920×1280 frame, its fine pass included", ""),
    ("detect_speedup_blazeface_vs_ssd", "SSD's time ÷ BlazeFace's on the 640×480 frame", ""),
    ("crop_face_ms_48", "one aligned 48 px face crop (`crop_face`)", ""),
    # group_photos
    ("recall_group_photos_blazeface_full", "share of the labelled faces of the group photos found", "1 (every face)"),
    ("recall_group_photos_*", "share of the labelled faces of the group photos found", ""),
    ("false_faces_group_photos_*", "detections that are no labelled face, over all the photos", ""),
    ("detect_ms_group_photos_*", "detection time per photo, median over the photos", ""),
    ("group_photos_count", "group photos these figures were measured on (their names: above the table)", ""),
    ("group_photos_labelled_faces", "labelled faces on those photos: what the recall is a share of", ""),
    # small_faces
    ("recall_small_faces_*px_blazeface_full", "share of the pasted faces of that width found by the full-range "
     "detector with its fine pass (16 faces to a 1280×853 scene)", ""),
    ("recall_small_faces_*px_blazeface_full_whole_view", "the same, its whole view alone (`zoom=0`)", ""),
    ("small_faces_source_faces", "labelled faces the pasted faces are drawn from", ""),
    # live
    ("e2e_ms_live_640x480_1face", "the live loop as `emolib video` / `webcam` run it: decode, live detector, crop, "
     "classify, track, smooth, draw, the next frame decoded and detected in a worker thread meanwhile; one thread "
     "each for torch and cv2; wall time / frame", "≤ 6 ms"),
    ("e2e_ms_live_640x480_4faces", "the same with four faces a frame", "≤ 8 ms"),
    ("e2e_live_prefetch_speedup_640x480_*", "the same loop without the worker thread ÷ with it", ""),
    ("e2e_ms_still_1920x1280", "`emolib predict` on a 1920×1280 group photo (6 faces): decode, blazeface_full with "
     "its fine pass (every core), classify every face, draw", ""),
    # folder
    ("folder_photos_per_s_one_by_one", "`emolib predict DIR` one file after another (read, detect, classify, next "
     "file; every core for torch and cv2) on a folder of the group photos and single-face 640×480 portraits; photos "
     "÷ wall seconds of a pass, best pass", ""),
    ("folder_photos_per_s_overlapped", "the same folder through `emolib predict`'s pipeline "
     "(`emolib.inference.batch.overlapped`: files read, decoded and detected by one worker a core while the faces "
     "of the files before them are classified in one batch)", ""),
    ("folder_overlap_speedup", "overlapped photos/s ÷ one-by-one photos/s, same run", "≥ 1.5 on 2 cores"),
    ("folder_photos_count", "photos in the folder (the group photos: above the table)", ""),
    ("folder_faces_found", "faces both paths found in it (the same, with the same labels, or the module fails)", ""),
    # e2e
    ("e2e_ms_640x480_1face_blazeface", "decode + detect + align + classify + draw, median over a clip of real "
     "faces, one thread each for torch and cv2", "≤ 8 ms"),
    ("e2e_ms_640x480_*", "decode + detect + align + classify + draw, median over a clip of real faces, one thread "
     "each for torch and cv2", ""),
    ("e2e_faces_found_640x480_*", "faces found per frame, mean over the clip", ""),
    ("e2e_stage_ms_640x480_*", "one stage of the default pipeline, median per frame", ""),
    ("e2e_fps_640x480_1face_blazeface", "frames per second of the default pipeline (1000 ÷ its ms)", ""),
    # peers (`make bench-peers`: docs/peers.json); a peer is `fer` (its TFLite model) or `fer_keras`
    ("e2e_speedup_vs_*_portraits_640x480_folder", "the peer's time a portrait ÷ emolib's on the portraits as one "
     "folder (`emolib predict DIR`'s overlapped pipeline)", ""),
    ("e2e_speedup_vs_fer_portraits_640x480", "`fer`'s time ÷ emolib's per single-face 640×480 portrait, file in, "
     "labels out", "≥ 5"),
    ("e2e_speedup_vs_*_portraits_640x480", "the peer's time ÷ emolib's per single-face 640×480 portrait", ""),
    ("e2e_speedup_vs_*_live_640x480", "the peer's time ÷ emolib's per frame of the 640×480 clip (emolib: `.live()`)",
     ""),
    ("e2e_speedup_vs_fer", "`fer`'s time ÷ emolib's over the group photos, file in, labels out", "≥ 5"),
    ("e2e_speedup_vs_*", "the peer's time ÷ emolib's over the group photos", ""),
    ("e2e_ms_*_emolib_folder", "emolib's wall time ÷ portraits for the folder, best pass", ""),
    ("e2e_ms_group_photos_*", "time per group photo, file in, labels out, mean of the files' medians", ""),
    ("e2e_ms_live_640x480_*", "time per frame of the clip, mean of the frames' medians", ""),
    ("e2e_ms_portraits_640x480_*", "time per portrait, mean of the files' medians", ""),
    ("faces_found_*", "faces found (on the group photos: labelled faces matched; elsewhere: files with a face found)", ""),
    ("right_labels_*", "labelled faces of the group photos given the expression read by eye", ""),
    ("compared_faces_vs_*", "faces both found: what the label agreement is a share of", ""),
    ("label_agreement_vs_*", "share of those faces given the same label by both", ""),
)

UNITS = ((re.compile(r"speedup|ratio|_onnx_vs_torch_"), "×"), (re.compile(r"_ms(_|$)"), " ms"),
         (re.compile(r"_fps_"), " fps"), (re.compile(r"(?:^|_)s(?:_|$)"), " s"))
PER_S = re.compile(r"([a-z]+)_per_s(?:_|$)")


def describe(name: str) -> tuple[str, str]:
    """(what, target) of a figure; ("", "") when no pattern of `FIGURES` matches it."""
    return next(((what, target) for pattern, what, target in FIGURES if fnmatchcase(name, pattern)), ("", ""))


def number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2g}" if abs(value) < 1e-3 else f"{value:.3g}"


def measured(name: str, value: float) -> str:
    """A figure as a reader wants it: a few significant digits and its unit, read off its name."""
    value = float(value)
    if m := PER_S.search(name):
        return f"{number(value)} {m.group(1)}/s"
    unit = next((u for pattern, u in UNITS if pattern.search(name)), "")
    return number(value) + unit


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes else f"{seconds:.1f} s"


def _header(machine: dict) -> list[str]:
    cores = f"{machine.get('cpu_count', '?')} (this process may use {machine.get('cpu_affinity', '?')}; " \
            f"torch threads {machine.get('torch_threads', '?')})"
    rows = [("CPU", machine.get("cpu", "unknown")), ("torch CPU capability", machine.get("cpu_capability", "?")),
            ("cores", cores), ("torch", machine.get("torch", "?")), ("Python", machine.get("python", "?")),
            ("commit", f"`{machine.get('commit') or 'unknown'}`"), ("date", machine.get("date", "?")),
            ("wall time", _duration(machine["wall_s"]) if "wall_s" in machine else "?")]
    if machine.get("load_avg_at_start") is not None:
        rows.append(("load average", f"{machine['load_avg_at_start']:.2f} at the start, "
                                     f"{machine.get('load_avg_at_end') or 0:.2f} at the end (1 minute; the bench "
                                     "itself adds up to one per core it uses)"))
    if machine.get("quick"):
        rows.append(("sizes", "`--quick` (smaller than a full run: not comparable to one)"))
    return ["| machine | |", "|---|---|", *(f"| {k} | {_cell(str(v))} |" for k, v in rows)]


def render(data: dict, peers: dict | None = None) -> str:
    """The Markdown page of one bench JSON, with a `make bench-peers` JSON (its own run) as its last section."""
    figures = {k: v for k, v in data.items() if not k.startswith("_")}
    modules = data.get("_modules", {})
    lines = ["# Benchmarks", "",
             f"Generated from [bench.json](bench.json), one `make bench` run, by `{REFRESH}`: do not edit this page.",
             "What each figure measures and its target are in `emolib/bench/_page.py`; the measured values only in "
             "the JSON.", "",
             *_header(data.get("_machine", {})), "",
             "Figures from another machine differ, often by 3-5×, and a busy machine's drop several-fold (torch's "
             "threads stall when another process takes a core): compare runs of one quiet machine only.", "",
             "## Refreshing this page", "",
             "```bash",
             "make bench                                  # this machine's figures -> reports/bench/bench.json",
             "cp reports/bench/bench.json docs/bench.json",
             "make bench-peers                            # emolib against `fer` -> reports/bench/peers.json",
             "cp reports/bench/peers.json docs/peers.json",
             f".venv/bin/{REFRESH}      # docs/bench.json and docs/peers.json -> docs/benchmarks.md",
             "```", ""]
    listed: set[str] = set()
    for name in sorted(modules):
        info = modules[name]
        names = [f for f in info.get("figures", []) if f in figures]
        listed.update(names)
        lines += [f"## {name}", ""]
        took = f", {_duration(info['seconds'])}" if "seconds" in info else ""
        lines += [f"`emolib/bench/{name}.py`{took}."]
        if info.get("inputs"):
            lines += ["", "Measured on: " + ", ".join(f"`{i}`" for i in info["inputs"]) + "."]
        for line in info.get("skipped", []):
            lines += ["", f"Skipped: {_cell(line)}"]
        if info.get("failed"):
            lines += ["", f"Failed: {_cell(info['failed'])}"]
        lines += [""] + (_table(names, figures) + [""] if names else [])
    rest = sorted(set(figures) - listed)
    if rest:
        lines += ["## Other figures", ""] + _table(rest, figures) + [""]
    if peers is not None:
        lines += _peers_section(peers)
    return "\n".join(lines)


def _peers_section(peers: dict) -> list[str]:
    setup, figures = peers.get("setup", {}), peers.get("figures", {})
    peer = ", ".join(f"{k} {v}" for k, v in sorted(setup.get("peer", {}).items()))
    return ["## peers", "",
            "`make bench-peers` (`emolib/bench/peers.py`, which says how each figure is counted), a run of its own "
            "([peers.json](peers.json)):", "",
            *_header(peers.get("machine", {})), "",
            f"emolib: {_cell(setup.get('emolib', '?'))}. The peer: {_cell(peer)}. Items: the group photos "
            f"({', '.join(f'`{p}`' for p in setup.get('photos', []))}), a {setup.get('clip_frames', '?')}-frame "
            f"640×480 clip and {setup.get('portraits', '?')} single-face 640×480 portraits; "
            f"{setup.get('repeats', '?')} timed calls a file, the median counts.", "",
            *_table(sorted(figures), figures), ""]


def _table(names: list[str], figures: dict) -> list[str]:
    rows = ["| figure | what | target | measured |", "|---|---|---|---|"]
    for name in sorted(names):
        what, target = describe(name)
        rows.append(f"| `{name}` | {_cell(what)} | {_cell(target)} | {measured(name, figures[name])} |")
    return rows
