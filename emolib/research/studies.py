"""Recipe studies: the variants a notebook's recipe was chosen from, measured and kept as JSON.

A report shows what was tried before its recipe was picked, but it does not rerun every variant
on each `make reproduce` (that would multiply its budget). A study runs the variants once, on the
profile's data and the notebook's own recipe with only the studied thing changed, and writes
``params/studies/<profile>/<study>.json``; the notebook reads and plots that file and says that it
was measured by this module, not by the notebook run.

    python -m emolib.research.studies 04_vit_variants --profile quick

Variants are compared on the validation split only (the test split is for the chosen recipe).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from emolib.core import atomic, paths
from emolib.research import session

# --------------------------------------------------------------------------- the studies


@dataclass(frozen=True)
class Variant:
    name: str                     # label in the report's table and figure
    model: str                    # registry name
    model_kwargs: dict = field(default_factory=dict)
    what: str = ""                # what this variant changes, in words


# 04's ViT on small data: what each small-data idea does on its own, in the same short budget.
VIT_VARIANTS = (
    Variant("plain ViT, 6 px patches, class token", "vit_small_48", {},
            "vit_small_48: linear patchify to 8×8 tokens, class-token pooling (the ViT paper's recipe)"),
    Variant("conv stem, 12×12 tokens, mean pool", "vit_conv_48", {"stem": [32, 64]},
            "Xiao et al. 2021 conv stem (two 3×3 stride-2 blocks), 4 px tokens, global average pooling"),
    Variant("conv stem, 6×6 tokens, class token", "vit_conv_48", {"stem": [32, 64, 128], "pool": "cls"},
            "three stride-2 conv blocks (8 px tokens), class-token pooling"),
    Variant("conv stem, 6×6 tokens, mean pool", "vit_conv_48", {"stem": [32, 64, 128]},
            "three stride-2 conv blocks (8 px tokens), global average pooling: the registered default"),
)

STUDIES = {"04_vit_variants": ("04_vit_finetune", VIT_VARIANTS)}
STUDY_EPOCHS = 12                 # every variant gets the same short budget


def study_path(study: str, profile: str) -> Path:
    return paths.params_dir() / "studies" / profile / f"{study}.json"


def load(study: str, profile: str) -> dict | None:
    """The recorded study for this profile, or None when none was recorded (the notebook says so)."""
    path = study_path(study, profile)
    return json.loads(path.read_text()) if path.exists() else None


# --------------------------------------------------------------------------- running one


def run_variant(variant: Variant, faces, train: dict, augment: dict, seed: int, device: str) -> dict:
    """Train one variant with the given recipe; its validation curve, best validation accuracy, time."""
    from emolib.core.runtime import resolve_device, seed_everything
    from emolib.models import create
    from emolib.training.loader import AugmentConfig, FaceLoader
    from emolib.training.loop import TrainConfig, fit

    seed_everything(seed)
    net = create(variant.model, num_classes=len(faces.classes), **variant.model_kwargs)
    tcfg = TrainConfig.from_dict({**train, "seed": seed, "device": device, "progress": False})
    dev = resolve_device(device)
    train_loader = FaceLoader(faces.split("train"), net.spec, tcfg.batch_size, train=True, seed=seed, device=dev,
                              augment=AugmentConfig.from_dict(augment))
    val_loader = FaceLoader(faces.split("val"), net.spec, 256, device=dev)
    t0 = time.perf_counter()
    history = fit(net, train_loader, val_loader, tcfg)
    return {"name": variant.name, "model": variant.model, "model_kwargs": variant.model_kwargs, "what": variant.what,
            "params": sum(p.numel() for p in net.parameters()), "val_acc": history["val_acc"],
            "train_loss": history["train_loss"], "best_val_acc": history["best_metric"],
            "train_s": round(time.perf_counter() - t0, 1)}


def run_study(study: str, profile: str, epochs: int = STUDY_EPOCHS) -> dict:
    from emolib.data import load as load_data

    notebook, variants = STUDIES[study]
    cfg = session.configure(notebook, profile)      # the notebook's own configuration, as the runner gives it
    faces = load_data(cfg.source, cfg.data_path, **cfg.data_options).subset(cfg.classes)
    train = {**cfg.train, "epochs": epochs}
    rows = [run_variant(v, faces, train, cfg.augment, cfg.seed, cfg.device) for v in variants]
    from emolib.core.provenance import git_commit
    return {"study": study, "notebook": notebook, "profile": profile, "code": git_commit(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "epochs": epochs, "train": train,
            "augment": cfg.augment, "data_options": cfg.data_options,
            "torch_threads": torch.get_num_threads(), "split": "val", "variants": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolib.research.studies", description=__doc__.split("\n\n")[0])
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--epochs", type=int, default=STUDY_EPOCHS)
    args = ap.parse_args(argv)
    result = run_study(args.study, args.profile, args.epochs)
    out = study_path(args.study, args.profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, json.dumps(result, indent=1) + "\n")
    for row in result["variants"]:
        print(f"{row['best_val_acc']:.3f}  {row['train_s']:7.1f} s  {row['name']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
