"""Training throughput: emolib's loop against a bare loop, for every model the training notebooks train.

For each training run of notebooks 02-04 under a profile, the model is built by the notebook's own plan
(`emolib.research.experiment`: the registry model, what the stage freezes, its TrainConfig section: optimizer,
scheduler, precision, memory format, clipping, batch size) and set up by the loop's own builders
(`emolib.training.loop`), on random faces of the data's shape (ImageNet weights are never needed: timing does not
depend on the weights). Two loops then train it on the same device and shapes:

- emolib: `train_one_epoch` over a training FaceLoader (the recipe's augmentation and preprocessing on the device,
  the loss and accuracy bookkeeping), `steps` batches a block;
- bare: the same step (autocast, criterion, backward, clipping, optimizer, scheduler) on one pre-made batch.

After warm-up the blocks alternate (emolib, bare, emolib, ...) `repeats` times, each timed with the device
synchronized; the median block gives the images per second. The evaluation pass (`evaluate_loss` at the validation
batch) is timed apart. On CUDA, GPU utilisation is sampled while each loop runs (`UtilisationSampler`).

    python -m emolib.bench.train --device cuda --profile fer2013        # JSON + a table; docs/training.md

`make bench` runs `run()`: the quick profile on the CPU. Figures: ``train_img_per_s_<run>_emolib``,
``train_img_per_s_<run>_bare``, ``train_emolib_vs_bare_ratio_<run>`` and ``eval_img_per_s_<run>``, where <run> is
the notebook's number and the run's checkpoint folder (``03_mobilenet_v2-head``: 03's first stage).
"""
from __future__ import annotations

import argparse
import inspect
import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from emolib.bench._gpu_util import UtilisationSampler
from emolib.core import paths, runtime
from emolib.core.labels import resolve_classes
from emolib.core.settings import TrainConfig
from emolib.data.arrays import FaceArrays
from emolib.research import experiment, session
from emolib.research.notebooks import SCHEMAS, TRAINING_NOTEBOOKS
from emolib.training.loader import AugmentConfig, FaceLoader
from emolib.training.loop import (
    build_criterion,
    build_optimizer,
    build_scheduler,
    evaluate_loss,
    place_for_training,
    scheduler_steps_per_batch,
    train_one_epoch,
)

# The validation loader's batch, as `experiment.train_model` builds it for fit.
VAL_BATCH = inspect.signature(experiment.train_model).parameters["val_batch_size"].default
FACE_SIDE = 48            # every source's faces are stored as 48 px gray (`FaceArrays`)


# --------------------------------------------------------------------------- the recipe's pieces

def random_faces(classes, n_train: int, n_val: int, seed: int = 0) -> FaceArrays:
    """Random 48 px gray faces and labels over `classes` (a profile's value), `n_train` + `n_val` rows."""
    names = resolve_classes(classes)
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    return FaceArrays(images=rng.integers(0, 256, (n, FACE_SIDE, FACE_SIDE), dtype=np.uint8),
                      labels=rng.integers(0, len(names), n).astype(np.int64),
                      splits=np.array(["train"] * n_train + ["val"] * n_val), classes=names,
                      source=f"random(seed={seed},n={n})")


def notebook_config(notebook: str, profile: str, device: str):
    """The notebook's validated config under `profile`, on `device`, with random initial weights (no download)."""
    overrides = {"device": device}
    if "pretrained" in SCHEMAS[notebook].__dataclass_fields__:
        overrides["pretrained"] = False
    return session.configure(notebook, profile, overrides)


@dataclass
class Setup:
    """One training run ready to step, built as `experiment.train_model` and `fit` build it."""
    model: nn.Module
    cfg: TrainConfig
    device: torch.device
    train_loader: FaceLoader
    val_loader: FaceLoader
    optimizer: torch.optim.Optimizer
    scheduler: object
    criterion: nn.Module
    scaler: torch.amp.GradScaler

    def batch_scheduler(self):
        """The scheduler `train_one_epoch` steps every batch (None when it steps per epoch)."""
        return self.scheduler if scheduler_steps_per_batch(self.cfg) else None


def set_up(net: nn.Module, data: FaceArrays, section: dict, cfg, *, scheduler_steps: int | None = None,
           batch_size: int | None = None) -> Setup:
    """`net` and its loaders, optimizer, scheduler, criterion and scaler as `train_model` + `fit` make them.

    scheduler_steps: the steps per epoch the scheduler is built for (default: the loader's, as in fit); the bench
    asks for more so a short recipe's OneCycle does not run out. batch_size: another batch than the recipe's.
    """
    options = {"progress": False} if batch_size is None else {"progress": False, "batch_size": batch_size}
    tcfg = TrainConfig.from_dict({**section, "seed": cfg.seed, "device": cfg.device, "out_dir": None, **options})
    dev = runtime.resolve_device(tcfg.device)
    train_loader = FaceLoader(data.split("train"), net.spec, tcfg.batch_size, train=True, seed=cfg.seed, device=dev,
                              augment=AugmentConfig.from_dict(cfg.augment or {}),
                              balanced=getattr(cfg, "balanced", False))
    val_loader = FaceLoader(data.split("val"), net.spec, VAL_BATCH, device=dev)
    runtime.seed_everything(tcfg.seed)
    place_for_training(net, tcfg, dev)
    optimizer = build_optimizer(net, tcfg)
    scheduler = build_scheduler(optimizer, tcfg, scheduler_steps or len(train_loader))
    criterion = build_criterion(tcfg, train_loader, dev)
    scaler = torch.amp.GradScaler(dev.type, enabled=runtime.amp_dtype(dev, tcfg.amp) == torch.float16)
    return Setup(net, tcfg, dev, train_loader, val_loader, optimizer, scheduler, criterion, scaler)


# --------------------------------------------------------------------------- the two loops

def emolib_steps(s: Setup, steps: int, epoch: int) -> None:
    """`steps` batches of emolib's own loop (one epoch of the training loader, capped)."""
    s.train_loader.set_epoch(epoch)
    train_one_epoch(s.model, s.train_loader, s.optimizer, s.criterion, s.scaler, replace(s.cfg, max_batches=steps),
                    s.device, scheduler=s.batch_scheduler())


def premade_batch(s: Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the model's input shape and the loader's targets, on the device before the clock starts."""
    spec, bs = s.model.spec, s.cfg.batch_size
    g = torch.Generator().manual_seed(s.cfg.seed)
    x = torch.randn(bs, spec.channels, spec.input_size, spec.input_size, generator=g).to(s.device)
    if s.cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, s.train_loader.batch_targets(torch.arange(bs, device=s.device))


def bare_steps(s: Setup, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """`steps` of the recipe's step on a pre-made batch: no loader, no bookkeeping, no progress bar."""
    s.model.train()
    dtype, scheduler = runtime.amp_dtype(s.device, s.cfg.amp), s.batch_scheduler()
    for _ in range(steps):
        with runtime.autocast(s.device, dtype):
            loss = s.criterion(s.model(x).float(), y)
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        if s.cfg.clip_grad_norm is not None:
            s.scaler.unscale_(s.optimizer)
            nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.clip_grad_norm)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        if scheduler is not None:
            scheduler.step()


def timed(device: torch.device, work, sampler: UtilisationSampler, tag: str) -> float:
    """Seconds `work()` takes, the device's queue drained before and after; utilisation sampled under `tag`."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda device: None)
    synchronize(device)
    sampler.tag = tag
    t0 = time.perf_counter()
    work()
    synchronize(device)
    seconds = time.perf_counter() - t0
    sampler.tag = None
    return seconds


# --------------------------------------------------------------------------- one run, every run

@dataclass(frozen=True)
class Plan:
    steps: int = 20           # training steps a timed block
    repeats: int = 3          # timed blocks of each loop, alternating
    warmup: int = 3           # untimed steps of each loop first (cudnn autotuning, allocator, lazy init)
    eval_batches: int = 4     # validation batches of the timed evaluation pass
    batch_size: int | None = None   # None: the recipe's

    def scheduler_steps(self) -> int:
        """Every step the bench takes on one run: its scheduler must last that long."""
        return 2 * (self.warmup + self.steps * self.repeats)


def measure(s: Setup, plan: Plan, sampler: UtilisationSampler) -> dict:
    """Images per second of both loops and of the evaluation pass, for one set-up run."""
    bs, dev = s.cfg.batch_size, s.device
    x, y = premade_batch(s)
    emolib_steps(s, plan.warmup, epoch=0)
    bare_steps(s, x, y, plan.warmup)
    times: dict[str, list[float]] = {"emolib": [], "bare": []}
    for r in range(plan.repeats):
        times["emolib"].append(timed(dev, lambda: emolib_steps(s, plan.steps, epoch=r + 1), sampler, "emolib"))
        times["bare"].append(timed(dev, lambda: bare_steps(s, x, y, plan.steps), sampler, "bare"))
    evaluate_loss(s.model, s.val_loader, dev, amp=s.cfg.amp)          # warm-up: eval-mode kernels
    eval_s = timed(dev, lambda: evaluate_loss(s.model, s.val_loader, dev, amp=s.cfg.amp), sampler, "eval")
    emolib = plan.steps * bs / statistics.median(times["emolib"])
    bare = plan.steps * bs / statistics.median(times["bare"])
    return {"emolib_img_per_s": emolib, "bare_img_per_s": bare, "emolib_vs_bare": emolib / bare,
            "eval_img_per_s": len(s.val_loader.labels) / eval_s,
            "gpu_util_emolib": sampler.mean("emolib"), "gpu_util_bare": sampler.mean("bare"),
            "gpu_util_eval": sampler.mean("eval"), "block_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}


def describe_run(notebook: str, stage, s: Setup) -> dict:
    """What was trained: the recipe's choices that decide a step's cost."""
    trainable = sum(p.numel() for p in s.model.parameters() if p.requires_grad)
    spec = s.model.spec
    return {"run": f"{notebook[:2]}_{stage.name}", "notebook": notebook, "model": s.model.model_name,
            "stage": stage.stage, "batch_size": s.cfg.batch_size, "eval_batch_size": s.val_loader.batch_size,
            "input": f"{spec.channels}x{spec.input_size}x{spec.input_size}", "optimizer": s.cfg.optimizer,
            "scheduler": s.cfg.scheduler, "amp_dtype": str(runtime.amp_dtype(s.device, s.cfg.amp)),
            "channels_last": s.cfg.channels_last,
            "clip_grad_norm": s.cfg.clip_grad_norm, "trainable_params": trainable,
            "total_params": sum(p.numel() for p in s.model.parameters())}


def notebook_runs(notebook: str, profile: str, device: str, plan: Plan, sampler: UtilisationSampler,
                  log=print) -> list[dict]:
    """Every training run of one notebook under `profile`, measured in its plan's order."""
    cfg = notebook_config(notebook, profile, device)
    sections = [getattr(cfg, k) for k in ("train", "head_train", "finetune_train") if hasattr(cfg, k)]
    bs = plan.batch_size or max(section.get("batch_size", TrainConfig.batch_size) for section in sections)
    data = random_faces(cfg.classes, bs * plan.steps, VAL_BATCH * plan.eval_batches, seed=cfg.seed)
    out, net = [], None
    for stage in experiment._stages(cfg, data):
        net = stage.make() if stage.make is not None else net
        if stage.prepare is not None:
            stage.prepare(net)
        dev = runtime.resolve_device(cfg.device)
        with runtime.deterministic(dev):
            s = set_up(net, data, stage.section, cfg, scheduler_steps=plan.scheduler_steps(),
                       batch_size=plan.batch_size)
            row = {**describe_run(notebook, stage, s), **measure(s, plan, sampler)}
        log(f"[bench.train] {row['run']}: images per second: emolib {row['emolib_img_per_s']:.1f}, bare "
            f"{row['bare_img_per_s']:.1f} (ratio {row['emolib_vs_bare']:.2f}), evaluation {row['eval_img_per_s']:.1f}")
        out.append(row)
    return out


def measure_profile(profile: str = "quick", device: str = "cpu", plan: Plan = Plan(),
                    notebooks: tuple[str, ...] = TRAINING_NOTEBOOKS, log=print) -> dict:
    """Every training run of `notebooks` under `profile` on `device`: the JSON `main` writes."""
    dev = runtime.resolve_device(device)
    t0 = time.perf_counter()
    with UtilisationSampler(dev) as sampler:
        runs = [row for nb in notebooks for row in notebook_runs(nb, profile, device, plan, sampler, log)]
    return {"profile": profile, "device": str(dev), "device_name": _device_name(dev),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cudnn_benchmark_in_fit": _cudnn_benchmark_in_fit(dev),
            "plan": plan.__dict__, "gpu_util_method": sampler.method, "gpu_util_missing": sampler.reason,
            "runs": runs, "seconds": round(time.perf_counter() - t0, 1)}


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    from emolib.bench._machine import cpu_model
    return cpu_model()


def _cudnn_benchmark_in_fit(dev: torch.device) -> bool:
    with runtime.deterministic(dev):
        return torch.backends.cudnn.benchmark


def table(result: dict) -> str:
    """The runs as a Markdown table, the issue's columns."""
    def util(v):
        return "n/a" if v is None else f"{v:.0f}%"
    lines = [f"{result['device_name']} ({result['device']}, torch {result['torch']}, CPU capability "
             f"{result['cpu_capability']}), profile {result['profile']}", "",
             "| run | model, input, batch | trainable / all params | emolib, images per second | bare | ratio | "
             "evaluation | GPU util emolib / bare |", "|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lines.append(f"| {r['run']} | {r['model']} {r['input']} b{r['batch_size']} {r['amp_dtype']}"
                     f"{' channels-last' if r['channels_last'] else ''} | {r['trainable_params']:,} / "
                     f"{r['total_params']:,} | {r['emolib_img_per_s']:,.1f} | {r['bare_img_per_s']:,.1f} | "
                     f"{r['emolib_vs_bare']:.2f} | {r['eval_img_per_s']:,.1f} | {util(r['gpu_util_emolib'])} / "
                     f"{util(r['gpu_util_bare'])} |")
    if result.get("gpu_util_missing"):
        lines += ["", f"GPU utilisation: {result['gpu_util_missing']}"]
    return "\n".join(lines)


def run(quick: bool = False) -> dict[str, float]:
    """`make bench`: the quick profile's runs on the CPU, as flat figures."""
    plan = Plan(steps=2 if quick else 4, repeats=1 if quick else 3, warmup=1, eval_batches=1)
    result = measure_profile("quick", "cpu", plan, log=lambda line: None)
    figures: dict[str, float] = {}
    for r in result["runs"]:
        figures[f"train_img_per_s_{r['run']}_emolib"] = r["emolib_img_per_s"]
        figures[f"train_img_per_s_{r['run']}_bare"] = r["bare_img_per_s"]
        figures[f"train_emolib_vs_bare_ratio_{r['run']}"] = r["emolib_vs_bare"]
        figures[f"eval_img_per_s_{r['run']}"] = r["eval_img_per_s"]
    return figures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emolib.bench.train", description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:<i> (default auto)")
    ap.add_argument("--profile", default="quick", help="params/<profile>.yaml whose recipes are timed (default quick)")
    ap.add_argument("--notebooks", nargs="*", default=list(TRAINING_NOTEBOOKS), choices=TRAINING_NOTEBOOKS)
    ap.add_argument("--steps", type=int, default=Plan.steps, help="training steps a timed block")
    ap.add_argument("--repeats", type=int, default=Plan.repeats, help="timed blocks of each loop")
    ap.add_argument("--warmup", type=int, default=Plan.warmup, help="untimed steps of each loop first")
    ap.add_argument("--eval-batches", type=int, default=Plan.eval_batches, help="batches of the timed evaluation")
    ap.add_argument("--batch-size", type=int, default=None, help="another batch than the recipe's (a CPU smoke run)")
    ap.add_argument("--out", default=None, help="JSON file (default reports/bench/train_<profile>_<device>.json)")
    args = ap.parse_args(argv)
    plan = Plan(args.steps, args.repeats, args.warmup, args.eval_batches, args.batch_size)
    result = measure_profile(args.profile, args.device, plan, tuple(args.notebooks))
    dev = result["device"].split(":")[0]
    out = Path(args.out) if args.out else paths.reports_dir() / "bench" / f"train_{args.profile}_{dev}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"[bench.train] wrote {paths.shown(out)} in {result['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
