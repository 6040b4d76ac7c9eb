"""`emolib predict`: faces and emotions of image files, as a table, JSON or CSV, with annotated copies."""
from __future__ import annotations

import contextlib
import csv
import json
import sys
from pathlib import Path

from emolib.cli.common import UsageError, err, recognizer_from_args

CSV_FIELDS = ["file", "status", "face", "x0", "y0", "x1", "y1", "label", "confidence", "top3", "emoji",
              "from_fallback", "detector_score", "latency_ms"]


def _annotated_path(out_dir: Path, src: Path, taken: set[Path]) -> Path:
    from emolib.core.images import WRITABLE_COLOR_SUFFIXES
    suffix = src.suffix.lower() if src.suffix.lower() in WRITABLE_COLOR_SUFFIXES else ".png"
    dest, k = out_dir / f"{src.stem}{suffix}", 1
    while dest in taken:                     # two inputs with the same name from different folders
        dest, k = out_dir / f"{src.stem}_{k}{suffix}", k + 1
    taken.add(dest)
    return dest


def predict_files(recognizer, inputs: list[str], annotate_dir: Path | None = None, *, workers: int = 1):
    """Yield one record per image file, in input order: file, faces (FaceResult list), error, latency_ms, annotated.

    workers: 1 reads, detects and classifies one file after another; more overlap them across files, with the
    faces of several files classified in one batch (emolib.inference.batch.overlapped: same records, faster on
    several cores; torch and cv2 get one thread each meanwhile).
    """
    import cv2

    from emolib.core.images import iter_image_files
    from emolib.inference import batch
    from emolib.inference.draw import annotate

    items = iter_image_files(inputs)
    results = batch.overlapped(recognizer, items, workers=workers) if workers > 1 else batch.one_by_one(recognizer, items)
    taken: set[Path] = set()
    for result in results:
        rec = {"file": str(result.path), "faces": result.faces, "error": result.error,
               "latency_ms": result.latency_ms, "annotated": None}
        if result.image is None:
            yield rec
            continue
        image = result.image
        rec["size"] = [int(image.shape[1]), int(image.shape[0])]
        if annotate_dir is not None:
            dest = _annotated_path(annotate_dir, result.path, taken)
            try:
                if not cv2.imwrite(str(dest), annotate(image, rec["faces"])):
                    raise OSError("OpenCV could not write it")
                rec["annotated"] = str(dest)
            except (OSError, cv2.error) as e:
                rec["error"] = f"annotated copy {dest} not written: {e}"
        yield rec


def _top3_text(face) -> str:
    return ", ".join(f"{c} {p:.2f}" for c, p in face.top3)


def _print_table(records: list[dict]) -> None:
    rows = [("FILE", "FACE", "LABEL", "CONF", "MS", "BOX x0,y0,x1,y1", "TOP-3")]
    for r in records:
        ms = "" if r["latency_ms"] is None else f"{r['latency_ms']:.1f}"
        if r["error"]:
            rows.append((r["file"], "-", "error: " + r["error"], "", "", "", ""))
        elif not r["faces"]:
            rows.append((r["file"], "-", "no face found", "", ms, "", ""))
        for i, f in enumerate(r["faces"]):
            label = f"{f.label} {f.emoji}".strip() + ("*" if f.from_fallback else "")
            rows.append((r["file"], str(i), label, f"{f.confidence:.2f}", ms,
                         ",".join(f"{v:.0f}" for v in f.box), _top3_text(f)))
    # Long texts (errors, "no face found") span the columns after them rather than widening them.
    short = [row for row in rows if row[3] or row is rows[0]]
    widths = [max(len(row[i]) for row in (rows if i < 2 else short)) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(f"{v:<{w}}" for v, w in zip(row, widths)).rstrip())
    if any(f.from_fallback for r in records for f in r["faces"]):
        print("* no face detected: the fallback region was classified")


def _json_record(r: dict) -> dict:
    out = {"file": r["file"], "error": r["error"],
           "status": "error" if r["error"] else ("ok" if r["faces"] else "no face found"),
           "latency_ms": None if r["latency_ms"] is None else round(r["latency_ms"], 2),
           "faces": [dict(face=i, **f.to_dict()) for i, f in enumerate(r["faces"])]}
    if r.get("annotated"):
        out["annotated"] = r["annotated"]
    return out


def _csv_rows(r: dict):
    base = {"file": r["file"], "latency_ms": "" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"}
    if r["error"] or not r["faces"]:
        yield {**base, "status": f"error: {r['error']}" if r["error"] else "no face found"}
    for i, f in enumerate(r["faces"]):
        x0, y0, x1, y1 = (f"{v:.1f}" for v in f.box)
        yield {**base, "status": "ok", "face": i, "x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": f.label,
               "confidence": f"{f.confidence:.4f}", "top3": ";".join(f"{c}:{p:.4f}" for c, p in f.top3),
               "emoji": f.emoji, "from_fallback": int(f.from_fallback), "detector_score": f"{f.detector_score:.4f}"}


def cmd_predict(args) -> int:
    from emolib.core.images import iter_image_files
    from emolib.core.runtime import cpu_threads

    annotate_dir = Path(args.annotate) if args.annotate else None
    if annotate_dir is not None:
        if annotate_dir.exists() and not annotate_dir.is_dir():
            raise UsageError(f"--annotate {annotate_dir}: exists and is not a directory")
        annotate_dir.mkdir(parents=True, exist_ok=True)
    # Several files: one worker a core, each stage on one thread (emolib.inference.batch), the recognizer built so
    # too (an ONNX Runtime session keeps its thread count); one file gets every thread.
    workers = args.threads if len(iter_image_files(args.paths)) > 1 else 1
    with cpu_threads(1) if workers > 1 else contextlib.nullcontext():
        recognizer = recognizer_from_args(args, fallback=args.fallback, tta_flip=args.tta, min_score=args.min_score)
        recognizer.warmup()                  # per-image latency then excludes one-time set-up
    writer = None
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
    records, failed = [], 0
    for r in predict_files(recognizer, args.paths, annotate_dir, workers=workers):
        if r["error"]:
            failed += 1
            err(f"{r['file']}: {r['error']}")
        if writer is not None:               # stream: a long batch shows progress
            writer.writerows(_csv_rows(r))
            sys.stdout.flush()
        records.append(r)
    if args.json:
        json.dump([_json_record(r) for r in records], sys.stdout, indent=2, ensure_ascii=False)
        print()
    elif not args.csv:
        _print_table(records)
    if failed:
        err(f"{failed} of {len(records)} inputs failed (the others were processed)")
    return 1 if failed else 0
