"""Training: one `fit` loop over `TrainConfig`, in the shape of torchvision's reference scripts.

    cfg = TrainConfig(epochs=20, lr=1e-3, out_dir="models/cnn_fer")
    history = fit(model, train_loader, val_loader, cfg)

`fit` seeds, builds the optimizer/scheduler/loss from the config, restores a resume state
(`restore_resume_state`), then per epoch runs `train_one_epoch` and `evaluate_loss` (the evaluation
loop shared with `emolib.training.evaluate.predict`), keeps the best weights by `cfg.monitor`, and writes
``last.pt`` (every epoch) and ``best.pt`` (on improvement) atomically through `emolib.models.checkpoint`.
``last.pt`` carries the full resume state (optimizer, scheduler, grad scaler, history,
early-stopping counter, RNG states), so ``resume=True`` continues after the last completed epoch and,
on CPU, ends with weights bit-identical to an uninterrupted run (the loaders' batches are a pure
function of seed and epoch).

Under torchrun (a process group of N ranks, `emolib.core.runtime.init_distributed`) the same `fit` trains
with DistributedDataParallel: each rank takes its shard of every batch (`emolib.training.ddp`), gradients
are averaged, training and validation figures are reduced over the ranks (so every rank takes the
same decisions), and only rank 0 writes. `cfg.batch_size` is per process; the global batch is N
times that. A run resumes from ``last.pt`` with another N when the global batch stays the same.
"""
from __future__ import annotations

import copy
import math
import time
from itertools import islice
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score
from torch import nn

from emolib.core import progress, runtime
from emolib.core.settings import TrainConfig
from emolib.core.spec import stamp_framing
from emolib.training import ddp, run_files
from emolib.training.evaluate import hard_labels, run_batches
from emolib.training.state import TrainState, end_of_epoch, monitor_mode, new_history, restore_resume_state

__all__ = ["TrainConfig", "fit", "train_one_epoch", "evaluate_loss", "restore_resume_state", "build_optimizer",
           "build_scheduler", "build_criterion", "MultiTargetLoss", "place_for_training", "scheduler_steps_per_batch"]


# --------------------------------------------------------------------------- building blocks

def build_optimizer(model: nn.Module, cfg: TrainConfig, param_groups: list[dict] | None = None):
    """AdamW or SGD over the trainable parameters only (or over the given param groups).

    Without groups, weight decay goes to weight matrices and conv kernels only (nanoGPT's rule):
    decaying biases and norm scales only hurts.
    """
    if param_groups is None and cfg.backbone_lr_mult != 1.0:
        from emolib.models.transfer import param_groups as transfer_groups
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
    # One fused kernel updates every tensor at once; the default for-loop launches a few ops per parameter tensor,
    # a noticeable share of a small net's step on a CPU (docs/training.md, TrainConfig).
    fused = param_groups[0]["params"][0].device.type in ("cpu", "cuda")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay, fused=fused)


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
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=monitor_mode(cfg.monitor),
                                                          factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    return None


def place_for_training(model: nn.Module, cfg: TrainConfig, device: torch.device) -> None:
    """In place: `model` on `device`, its weights channels-last when `cfg.channels_last` (the batches follow in
    `train_one_epoch`). A model marked ``cpu_channels_last = False`` is refused that on a CPU, where torch crashes
    in its backward (MiniXception), with the way out."""
    if cfg.channels_last and device.type == "cpu" and not getattr(model, "cpu_channels_last", True):
        raise ValueError(f"{type(model).__name__} cannot train channels-last on a CPU (torch crashes in its backward, "
                         "see the model's cpu_channels_last): set channels_last: false")
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)


def scheduler_steps_per_batch(cfg: TrainConfig) -> bool:
    return cfg.scheduler in ("onecycle", "cosine")


class MultiTargetLoss(nn.Module):
    """FER+'s multi-target loss (its reference code): -log of the highest probability the model gives any of a
    row's targets (the classes with target > 0), so predicting either of two chosen emotions is right."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits, dim=1).masked_fill(targets <= 0, float("-inf"))
        return -log_probs.max(dim=1).values.mean()


def build_criterion(cfg: TrainConfig, train_loader, device) -> nn.Module:
    """Cross-entropy against the loader's targets: labels or (FER+ crossentropy) distributions, which
    nn.CrossEntropyLoss takes as they are; FER+ multi_target gets its own loss."""
    if getattr(train_loader, "target_mode", "labels") == "multi_target":
        return MultiTargetLoss()
    weight = None
    if cfg.weighted_loss:
        from emolib.training.loader import class_weights
        weight = class_weights(train_loader.labels, train_loader.num_classes).to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)


# --------------------------------------------------------------------------- one epoch, one evaluation

def evaluate_loss(model: nn.Module, loader, device=None, *, amp: bool = False) -> dict:
    """Plain (unweighted, unsmoothed) cross-entropy, accuracy and macro F1 over a loader (accuracy and F1
    against the top class where its targets are distributions).

    Under a process group `loader` is this rank's shard: the outputs of every rank are gathered
    first, so each rank returns the figures of the whole split.
    """
    logits, labels = run_batches(model, loader, device, amp=amp)
    logits, labels = ddp.all_gather_rows(logits), ddp.all_gather_rows(labels)
    if not len(labels):
        raise ValueError("evaluate_loss got an empty loader")
    preds, hard = logits.argmax(1), hard_labels(labels)
    return {"loss": F.cross_entropy(logits, labels, reduction="sum").item() / len(labels),
            "acc": float((preds == hard).double().mean()),
            "macro_f1": float(f1_score(hard.numpy(), preds.numpy(), average="macro", zero_division=0))}


def steps_per_epoch(loader, cfg: TrainConfig) -> int:
    """The batches an epoch trains on: the loader's, or `cfg.max_batches` of them."""
    return len(loader) if cfg.max_batches is None else min(len(loader), cfg.max_batches)


# A shown progress bar's running loss and accuracy are read from the device every this many steps and at the last
# one: each read waits for the device to finish the queued steps.
POSTFIX_EVERY = 25


def train_one_epoch(model: nn.Module, loader, optimizer, criterion, scaler, cfg: TrainConfig, device: torch.device,
                    *, scheduler=None, desc: str = "") -> dict:
    """One pass over `loader`: forward, loss, backward (scaled), clip, step; `scheduler` steps every batch.

    Returns the epoch's mean training loss and accuracy (over every rank's rows) and the lr of the last step. They
    are summed on the device and read once, at the end (a shown bar reads them every `POSTFIX_EVERY` steps and at the last one too).
    """
    model.train()
    dtype = runtime.amp_dtype(device, cfg.amp)
    # The running sums stay on the device: reading them (.item()) makes the host wait for the GPU to finish the
    # step, so it could not queue the next batch meanwhile. float64, as Python's float: the same figures.
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, lr = 0, optimizer.param_groups[0]["lr"]
    batches = loader if cfg.max_batches is None else islice(loader, cfg.max_batches)
    total = steps_per_epoch(loader, cfg)
    bar = progress.bar(batches, total=total, show=cfg.progress and runtime.is_main(), desc=desc, leave=False,
                       dynamic_ncols=True)
    shown = not bar.disable            # read now: tqdm disables a bar once its iteration ends
    for step, (x, y) in enumerate(bar, 1):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if cfg.channels_last:   # NHWC: tensor cores on CUDA, oneDNN's blocked kernels on a CPU
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(device, dtype):
            logits = model(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()      # under DDP, the gradients are averaged over the ranks here
        if cfg.clip_grad_norm is not None:
            scaler.unscale_(optimizer)     # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        n = len(y)
        loss_sum += loss.detach().double() * n
        correct += (logits.argmax(1) == hard_labels(y)).sum()
        seen += n
        if shown and (step % POSTFIX_EVERY == 0 or step == total):     # a shown bar reads the sums now and then
            _show_running_figures(bar, loss_sum, correct, seen)
    loss_sum, correct = torch.stack([loss_sum, correct.double()]).tolist()    # the epoch's one read
    bar.close()
    loss_sum, correct, seen = ddp.all_sum([loss_sum, correct, seen], device)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": lr}


def _show_running_figures(bar, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
    loss, right = torch.stack([loss_sum, correct.double()]).tolist()
    bar.set_postfix(loss=f"{loss / seen:.3f}", acc=f"{right / seen:.3f}")


# --------------------------------------------------------------------------- the loop

def train_images_per_epoch(loader, cfg: TrainConfig) -> int:
    """The training images one epoch shows the model, over every rank (a sharded epoch is padded to a multiple
    of the ranks, `emolib.training.ddp`); the last batch may be short unless the loader drops it."""
    world = getattr(loader, "world_size", 1)
    rows = math.ceil(len(loader.labels) / world) * world
    return min(rows, steps_per_epoch(loader, cfg) * loader.batch_size * world)


def fit(model: nn.Module, train_loader, val_loader, cfg: TrainConfig, *, param_groups: list[dict] | None = None,
        classes=None, stop_after: int | None = None,
        on_epoch_end: Callable[[dict], None] | None = None, context: dict | None = None) -> dict:
    """Train `model` and return its history (per-epoch lists plus best_epoch, best_metric, ...).

    stop_after: end the run after this many completed epochs, exactly as an interruption would
    (checkpoints stay as written; `resume=True` continues). on_epoch_end: called (on every rank) with
    the history after every epoch (live plots); an exception from it, KeyboardInterrupt included,
    ends the run with last.pt holding the last completed epoch. With an out_dir, config.yaml (with
    `context`: what the caller knows, e.g. a notebook's section and overrides) and history.csv go beside
    the checkpoints, and TensorBoard's scalars with ``cfg.logger`` (`emolib.training.run_files`).
    """
    device = runtime.resolve_device(cfg.device)
    classes = list(classes if classes is not None else train_loader.classes)
    stamp_framing(model, train_loader)     # the checkpoint crops photos as its training faces were framed
    out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
    world = runtime.world_size()
    runtime.seed_everything(cfg.seed if world == 1 else runtime.rank_seed(cfg.seed, runtime.rank()))
    with runtime.deterministic(device):
        place_for_training(model, cfg, device)
        train_loader, val_loader = ddp.shard(train_loader), ddp.shard(val_loader)
        optimizer = build_optimizer(model, cfg, param_groups)
        scheduler = build_scheduler(optimizer, cfg, steps_per_epoch(train_loader, cfg))
        per_batch = scheduler_steps_per_batch(cfg)
        criterion = build_criterion(cfg, train_loader, device)
        # Only fp16 needs loss scaling; bf16 has float32's exponent range.
        scaler = torch.amp.GradScaler(device.type, enabled=runtime.amp_dtype(device, cfg.amp) == torch.float16)
        st = TrainState(new_history(cfg))
        if cfg.resume:
            st = restore_resume_state(out_dir, model, optimizer, scheduler, scaler, cfg, classes) or st
        files = run_files.RunFiles(out_dir, cfg, device=device, history=st.history, start_epoch=st.start_epoch,
                                   context=context)
        st.history.update(processes=world, batch_size=cfg.batch_size, global_batch_size=cfg.batch_size * world,
                          tensorboard_dir=files.tensorboard_dir)
        images = train_images_per_epoch(train_loader, cfg)
        net = ddp.wrap(model, device)
        try:
            for epoch in range(st.start_epoch, cfg.epochs):
                if st.history["stopped_early"] or (stop_after is not None and epoch >= stop_after):
                    break
                t0 = time.perf_counter()
                train_loader.set_epoch(epoch)
                record = train_one_epoch(net, train_loader, optimizer, criterion, scaler, cfg, device,
                                         scheduler=scheduler if per_batch else None,
                                         desc=f"epoch {epoch + 1}/{cfg.epochs}")
                record["images_per_s"] = images / (time.perf_counter() - t0)
                ddp.sync_buffers(model)          # every rank evaluates the weights rank 0 saves
                val = evaluate_loss(model, val_loader, device, amp=cfg.amp)
                record.update(val_loss=val["loss"], val_acc=val["acc"], val_macro_f1=val["macro_f1"])
                metric = record[cfg.monitor]
                if scheduler is not None and not per_batch:
                    scheduler.step(metric) if cfg.scheduler == "plateau" else scheduler.step()
                record["epoch_time_s"] = time.perf_counter() - t0
                end_of_epoch(st, record, metric, epoch, model, optimizer, scheduler, scaler, cfg, classes, out_dir)
                files.epoch_end(st.history)
                if on_epoch_end is not None:
                    on_epoch_end(st.history)
        except KeyboardInterrupt:
            # last.pt already holds the last completed epoch (writes are atomic); resume=True continues.
            st.history["interrupted"] = True
            raise
        finally:
            files.close()
    if cfg.restore_best and st.best_state is not None:
        model.load_state_dict(st.best_state)
    return copy.deepcopy(st.history)
