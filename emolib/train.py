"""Training: one config dataclass and one `fit` loop, readable in one sitting.

    cfg = TrainConfig(epochs=20, lr=1e-3, out_dir="models/cnn_fer")
    history = fit(model, train_loader, val_loader, cfg)

`fit` seeds everything, trains with the configured optimizer/scheduler/loss, validates every
epoch, keeps the best weights by `cfg.monitor`, and writes ``last.pt`` (every epoch) and
``best.pt`` (on improvement) atomically through `emolib.checkpoint`. ``last.pt`` carries the full
resume state (optimizer, scheduler, grad scaler, history, early-stopping counter, RNG states), so
``resume=True`` continues after the last completed epoch and, on CPU, ends with weights
bit-identical to an uninterrupted run (the loaders' batches are a pure function of seed and epoch).
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .config import check_field_types, from_mapping

Monitor = Literal["val_acc", "val_loss", "val_macro_f1"]


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64                  # used by whoever builds the loaders (notebooks); fit takes loaders
    # optimizer
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3                      # peak lr (onecycle) / initial lr (the others)
    weight_decay: float = 1e-4            # applied to weights (ndim >= 2) only, not to biases and norms
    momentum: float = 0.9                 # sgd only
    nesterov: bool = True                 # sgd only
    backbone_lr_mult: float = 1.0         # != 1: backbone lr = lr * mult (emolib.models.transfer.param_groups)
    # schedule (onecycle and cosine step every batch; step and plateau every epoch)
    scheduler: Literal["onecycle", "plateau", "cosine", "step", "none"] = "onecycle"
    pct_start: float = 0.3                # onecycle: share of steps spent warming up
    warmup_epochs: float = 0.0            # cosine: linear warmup from 0 over this many epochs
    step_size: int = 10                   # step: epochs between decays
    gamma: float = 0.1                    # step: decay factor
    plateau_patience: int = 3             # plateau: epochs without improvement of `monitor` before decaying
    plateau_factor: float = 0.5           # plateau: decay factor
    # loss
    label_smoothing: float = 0.0
    weighted_loss: bool = False           # inverse-frequency class weights from the train loader's labels
    # selection and stopping
    monitor: Monitor = "val_acc"
    early_stopping_patience: int | None = None   # epochs without improvement before stopping; None = off
    restore_best: bool = True             # at the end, load the best epoch's weights into the model
    clip_grad_norm: float | None = None
    # hardware (amp and channels_last take effect on CUDA only; on CPU they are no-ops)
    amp: bool = False                     # bf16 autocast where supported, else fp16 + GradScaler
    channels_last: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    # files
    out_dir: str | None = None            # where best.pt and last.pt go; None = write no checkpoints
    resume: bool = False                  # continue from out_dir/last.pt when it exists
    progress: bool = True                 # tqdm bar per epoch

    def __post_init__(self):
        check_field_types(self, "training option")
        if isinstance(self.out_dir, os.PathLike):
            self.out_dir = os.fspath(self.out_dir)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0 or not 0 < self.pct_start < 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("need lr > 0, 0 < pct_start < 1 and 0 <= label_smoothing < 1")
        if self.resume and self.out_dir is None:
            raise ValueError("resume=True needs an out_dir holding last.pt")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Build from a params section: unknown keys and wrong types are errors that name the key."""
        return from_mapping(cls, d, "training option")

    def to_dict(self) -> dict:
        return asdict(self)


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


# --------------------------------------------------------------------------- building blocks

def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but CUDA is not available (use 'auto' or 'cpu')")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)   # also seeds every CUDA device


def rng_state() -> dict:
    """Python, NumPy and torch RNG states in checkpoint-safe form (tensors, ints, lists)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(mt), gauss], "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(model: nn.Module, cfg: TrainConfig, param_groups: list[dict] | None = None):
    """AdamW or SGD over the trainable parameters only (or over the given param groups).

    Without groups, weight decay goes to weight matrices and conv kernels only (nanoGPT's rule):
    decaying biases and norm scales only hurts.
    """
    if param_groups is None and cfg.backbone_lr_mult != 1.0:
        from .models.transfer import param_groups as transfer_groups
        param_groups = transfer_groups(model, cfg.lr, backbone_lr_mult=cfg.backbone_lr_mult)
    if param_groups is None:
        params = [p for p in model.parameters() if p.requires_grad]
        param_groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    else:  # drop frozen parameters the caller may have listed
        param_groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in param_groups]
    param_groups = [g for g in param_groups if g["params"]]
    if not param_groups:
        raise ValueError("the model has no trainable parameters (everything has requires_grad=False)")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def _warmup_cosine(warmup_steps: int, total_steps: int):
    # A module-level closure factory keeps LambdaLR's state_dict free of functions (they are not saved).
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """The configured LR scheduler (or None). See `scheduler_steps_per_batch` for when it steps."""
    total = cfg.epochs * steps_per_epoch
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total, pct_start=cfg.pct_start)
    if cfg.scheduler == "cosine":
        warmup = round(cfg.warmup_epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(warmup, total))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=_mode(cfg.monitor),
                                                          factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    return None


def scheduler_steps_per_batch(cfg: TrainConfig) -> bool:
    return cfg.scheduler in ("onecycle", "cosine")


def _mode(monitor: str) -> str:
    return "min" if monitor == "val_loss" else "max"


def _improved(value: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return value < best if _mode(monitor) == "min" else value > best


def build_criterion(cfg: TrainConfig, train_loader, device) -> nn.Module:
    weight = None
    if cfg.weighted_loss:
        from .data.dataset import class_weights
        weight = class_weights(train_loader.labels, train_loader.num_classes).to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


def amp_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 where the GPU supports it, else fp16; None (no autocast) off CUDA or with amp off."""
    if not (amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None)


def evaluate_loss(model: nn.Module, loader, device=None, *, amp: bool = False) -> dict:
    """Plain (unweighted, unsmoothed) cross-entropy, accuracy and macro F1 over a loader."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_loss, preds, labels = 0.0, [], []
    dtype = amp_dtype(device, amp)
    try:
        with torch.inference_mode(), autocast(device, dtype):
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = model(x).float()
                total_loss += F.cross_entropy(logits, y, reduction="sum").item()
                preds.append(logits.argmax(1).cpu())
                labels.append(y.cpu())
    finally:
        model.train(was_training)
    preds, labels = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    return {"loss": total_loss / len(labels), "acc": float((preds == labels).mean()),
            "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0))}


# --------------------------------------------------------------------------- the loop

# Options that may differ between a run and its resumption without changing the result.
RESUME_MAY_CHANGE = {"resume", "progress", "out_dir", "device"}
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "epoch_time_s")


def fit(model: nn.Module, train_loader, val_loader, cfg: TrainConfig, *, param_groups: list[dict] | None = None,
        classes=None, stop_after: int | None = None,
        on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train `model` and return its history (per-epoch lists plus best_epoch, best_metric, ...).

    stop_after: end the run after this many completed epochs, exactly as an interruption would
    (checkpoints stay as written; `resume=True` continues). on_epoch_end: called with the history
    after every epoch (live plots); an exception from it, KeyboardInterrupt included, ends the run
    with last.pt holding the last completed epoch.
    """
    device = resolve_device(cfg.device)
    classes = list(classes if classes is not None else train_loader.classes)
    out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
    last_path = out_dir / "last.pt" if out_dir else None
    best_path = out_dir / "best.pt" if out_dir else None

    seed_everything(cfg.seed)
    deterministic_before = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    channels_last = cfg.channels_last and device.type == "cuda"
    model.to(device)
    if channels_last:   # NHWC convolutions are faster on tensor cores (CUDA only, see above)
        model.to(memory_format=torch.channels_last)

    optimizer = build_optimizer(model, cfg, param_groups)
    scheduler = build_scheduler(optimizer, cfg, len(train_loader))
    per_batch = scheduler_steps_per_batch(cfg)
    criterion = build_criterion(cfg, train_loader, device)
    dtype = amp_dtype(device, cfg.amp)
    # Only fp16 needs loss scaling; bf16 has float32's exponent range.
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    history = {k: [] for k in HISTORY_KEYS}
    history.update(best_epoch=None, best_metric=None, monitor=cfg.monitor, stopped_early=False,
                   interrupted=False, completed_epochs=0, best_checkpoint=None, last_checkpoint=None,
                   resumed_from_epoch=None)
    bad_epochs, start_epoch, best_state = 0, 0, None

    if cfg.resume and last_path.exists():
        ckpt = load_checkpoint(last_path, expect_classes=classes)
        if ckpt.get("state") is None:
            raise ValueError(f"{last_path} holds no training state to resume from")
        name = getattr(model, "model_name", None)
        if name is not None and ckpt["model_name"] != name:
            raise ValueError(f"{last_path} is a checkpoint of {ckpt['model_name']!r}, not of {name!r}")
        # An exact continuation needs the same recipe; only where/how the run is watched may change.
        saved = ckpt.get("config", {})
        changed = sorted(k for k, v in cfg.to_dict().items()
                         if k not in RESUME_MAY_CHANGE and k in saved and saved[k] != _plain(v))
        if changed:
            raise ValueError(f"cannot resume from {last_path}: the config changed in {changed} "
                             f"(saved {[saved[k] for k in changed]}, now {[getattr(cfg, k) for k in changed]}); "
                             "start a new run (another out_dir, or resume=False)")
        state = ckpt["state"]
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        history, bad_epochs, start_epoch = state["history"], state["bad_epochs"], state["epoch"]
        history["resumed_from_epoch"] = start_epoch
        set_rng_state(state["rng"])
        if best_path.exists():
            best_state = load_checkpoint(best_path)["state_dict"]

    try:
        for epoch in range(start_epoch, cfg.epochs):
            if history["stopped_early"] or (stop_after is not None and epoch >= stop_after):
                break
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not cfg.progress, dynamic_ncols=True)
            for x, y in bar:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device, dtype):
                    logits = model(x)
                    loss = criterion(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad_norm is not None:
                    scaler.unscale_(optimizer)   # clip the true gradients, not the scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                lr = optimizer.param_groups[0]["lr"]
                if per_batch:
                    scheduler.step()
                n = y.numel()
                loss_sum += loss.item() * n
                correct += (logits.argmax(1) == y).sum().item()
                seen += n
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            bar.close()

            val = evaluate_loss(model, val_loader, device, amp=cfg.amp)
            metric = {"val_acc": val["acc"], "val_loss": val["loss"], "val_macro_f1": val["macro_f1"]}[cfg.monitor]
            if scheduler is not None and not per_batch:
                scheduler.step(metric) if cfg.scheduler == "plateau" else scheduler.step()
            record = {"train_loss": loss_sum / seen, "train_acc": correct / seen, "val_loss": val["loss"],
                      "val_acc": val["acc"], "val_macro_f1": val["macro_f1"], "lr": lr,
                      "epoch_time_s": time.perf_counter() - t0}
            for k in HISTORY_KEYS:
                history[k].append(float(record[k]))
            history["completed_epochs"] = epoch + 1

            if _improved(metric, history["best_metric"], cfg.monitor):
                history.update(best_epoch=epoch + 1, best_metric=float(metric))
                bad_epochs = 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if best_path is not None:
                    history["best_checkpoint"] = str(best_path)
                    save_checkpoint(best_path, model, classes=classes, config=cfg.to_dict(),
                                    metrics={"epoch": epoch + 1, **record})
            else:
                bad_epochs += 1
            if cfg.early_stopping_patience is not None and bad_epochs >= cfg.early_stopping_patience:
                history["stopped_early"] = True

            if last_path is not None:
                history["last_checkpoint"] = str(last_path)
                state = {"epoch": epoch + 1, "history": history, "bad_epochs": bad_epochs,
                         "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict() if scheduler is not None else None,
                         "scaler": scaler.state_dict(), "rng": rng_state()}
                save_checkpoint(last_path, model, classes=classes, config=cfg.to_dict(),
                                metrics={"epoch": epoch + 1, **record}, state=state)
            if on_epoch_end is not None:
                on_epoch_end(history)
    except KeyboardInterrupt:
        # last.pt already holds the last completed epoch (writes are atomic); resume=True continues.
        history["interrupted"] = True
        raise
    finally:
        torch.use_deterministic_algorithms(deterministic_before[0], warn_only=deterministic_before[1])

    if cfg.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return copy.deepcopy(history)
