"""`emolib models`, `emolib assets` and `emolib export`: what models exist, their files, ONNX export."""
from __future__ import annotations

import json
import sys

from emolib.cli.common import UsageError, err
from emolib.core.labels import EMOTIONS


def pretrained_status(name: str) -> tuple[str, str]:
    """(weights kind, availability) of a registered model's pretrained weights, without loading them."""
    from emolib.core import assets
    from emolib.models import entry

    w = entry(name).weights            # the one record of where the weights come from
    if w is None:
        return "-", "none (train it)"
    kind = f"emotions ({w.dataset.split()[0]})" if w.predicts_emotions else f"{w.dataset} backbone"
    if assets.cached(w):
        return kind, "offline (cached)"
    return kind, "download needed" if w.needs_download else "offline (package, run make setup)"


def cmd_models(args) -> int:
    from emolib.models import entry, list_models
    rows = []
    for name in list_models():
        e = entry(name)
        kind, status = pretrained_status(name)
        s = e.spec
        rows.append((name, f"{s.input_size}x{s.input_size} {'gray' if s.channels == 1 else 'RGB'}",
                     kind, status, e.description))
    from emolib.models.catalog import find_trained
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
    from emolib.inference.classifier import DEFAULT_MODEL
    print(f"\nUse a model with pretrained emotion weights directly (--model {DEFAULT_MODEL}, the default); the "
          "others need a checkpoint you trained (--model path/to/checkpoint.pt).")
    _print_trained(trained)
    return 0


def _print_trained(trained) -> None:
    """The checkpoints under the models root, by the short name `--model` accepts, with the test figures their
    notebook recorded in them ("-": not recorded, e.g. a checkpoint evaluated before emolib recorded that figure)."""
    from emolib.core import paths
    root = paths.models_dir()
    if not trained:
        print(f"\nNo trained checkpoints under {root} yet: `make reproduce` (or `emolib train`) writes them there.")
        return
    header = ("SHORT NAME (--model)", "ARCHITECTURE", "CLASSES", "INPUT", "PROFILE", "ACCURACY", "MACRO-F1", "ECE",
              "PARAMS", "MS/FACE", "BEST EPOCH", "DATA")
    rows = [_trained_row(t) for t in trained]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    print(f"\nTrained checkpoints under {root} (accuracy: test when recorded, else the best validation epoch's; "
          "the other figures on the test split; runs not published by `make reproduce` marked beside the profile):")
    for r in [header, *rows]:
        print("  ".join(f"{v:<{w}}" for v, w in zip(r, widths)) + "  " + r[-1])
    print(f"\nUse one by its short name: emolib predict photo.jpg --model {trained[0].short_name}")


def _trained_row(t) -> tuple[str, ...]:
    """One checkpoint's line of `emolib models`: the columns of the index's results table."""
    if t.error:
        return (t.short_name, "unreadable", "-", "-", t.profile or "-", *["-"] * 6, t.error)
    if t.test_accuracy is not None:
        acc = f"test {t.test_accuracy:.3f}"
    else:
        acc = f"val {t.val_accuracy:.3f}" if t.val_accuracy is not None else "-"
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)
    return (t.short_name, t.model_name, "all 7" if t.classes == EMOTIONS else ",".join(t.classes), t.input,
            f"{t.profile} ({t.kind})" if t.kind and t.kind != "published" else (t.profile or "-"), acc,
            fmt(t.test_macro_f1, ".3f"), fmt(t.test_ece, ".3f"), _count(t.parameters), fmt(t.ms_per_face, ".2f"),
            fmt(t.best_epoch, "d"), t.data or "-")


def _count(n: int | None) -> str:
    """A parameter count as a terminal reads it: 1.23M, 45.6k."""
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def known_assets() -> dict:
    """Every file emolib knows: the detector files and every registry entry's weights record."""
    from emolib.core import assets
    from emolib.models import entry, list_models
    out = dict(assets.ASSETS)
    for model in list_models():
        if (w := entry(model).weights) is not None:
            out[w.filename] = w
    return out


def cmd_assets(args) -> int:
    """Resolve every file a registry package carries (`make setup`): the detectors and the offline weights; then
    export the models ONNX Runtime runs by default (no network needed: from those weights)."""
    from emolib.core import assets
    from emolib.inference import onnx_cache
    failed = 0
    for name, asset in known_assets().items():
        if not asset.package:             # download-only weights are fetched on first use, not here
            continue
        try:
            print(f"{name}: {assets.resolve(asset, allow_network=not args.offline)}")
        except assets.AssetError as e:
            failed += 1
            err(str(e))
    for model_name in onnx_cache.ONNX_MODELS:
        try:
            print(f"{model_name} for ONNX Runtime: {onnx_cache.build(model_name)}")
        except assets.AssetError as e:
            failed += 1
            err(f"{model_name} not exported for ONNX Runtime (PyTorch runs it meanwhile): {e}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- export
def cmd_export(args) -> int:
    from emolib.inference.classifier import load_classifier
    from emolib.inference.export import ExportError, export_onnx
    if not args.onnx.lower().endswith(".onnx"):
        raise UsageError(f"--onnx {args.onnx}: the file name must end in .onnx")
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
        err(str(e))
        return 1
    print(f"wrote {args.onnx}: ONNX Runtime matches PyTorch on {parity.crops} face crops (batch sizes "
          f"{', '.join(map(str, parity.batch_sizes))}): max |Δp| {parity.max_abs_prob_diff:.1e} "
          f"<= {args.tolerance:.0e}, same top-1 on every crop")
    print(f"use it: emolib predict photo.jpg --model {args.onnx}")
    return 0
