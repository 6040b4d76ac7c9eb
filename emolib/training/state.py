"""What a training run carries from one epoch to the next: its history, best weights and resume state.

`end_of_epoch` records an epoch, keeps the best weights by the monitored metric, decides early
stopping and writes ``best.pt`` and ``last.pt`` (rank 0 only); `restore_resume_state` reads
``last.pt`` back into a model, optimizer, scheduler, grad scaler and the RNGs, after checking that
it continues the same recipe. `emolib.training.loop.fit` is the loop around them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from emolib.core import runtime
from emolib.core.errors import EmolibError
from emolib.core.settings import TrainConfig
from emolib.models.checkpoint import load_checkpoint, save_checkpoint
from emolib.training import ddp

__all__ = ["ResumeError", "TrainState", "new_history", "end_of_epoch", "restore_resume_state", "monitor_mode", "improved",
           "RESUME_MAY_CHANGE", "HISTORY_KEYS"]


class ResumeError(EmolibError, ValueError):
    """last.pt cannot continue this run (another model, classes or recipe, or another global batch)."""


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def monitor_mode(monitor: str) -> str:
    return "min" if monitor == "val_loss" else "max"


def improved(value: float, best: float | None, monitor: str) -> bool:
    if best is None:
        return True
    return value < best if monitor_mode(monitor) == "min" else value > best


# Options that may differ between a run and its resumption without changing the result.
RESUME_MAY_CHANGE = {"resume", "progress", "out_dir", "device", "logger"}
# One value an epoch each. images_per_s: training images (all ranks) per second of the epoch's training pass.
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "epoch_time_s", "images_per_s")


@dataclass
class TrainState:
    """Where a run stands between epochs (what last.pt carries besides the weights and optimizer)."""
    history: dict
    start_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = field(default=None, repr=False)


def new_history(cfg: TrainConfig) -> dict:
    history = {k: [] for k in HISTORY_KEYS}
    history.update(best_epoch=None, best_metric=None, monitor=cfg.monitor, stopped_early=False,
                   interrupted=False, completed_epochs=0, best_checkpoint=None, last_checkpoint=None,
                   resumed_from_epoch=None)
    return history


def _read_resume(out_dir: Path, model: nn.Module, cfg: TrainConfig, classes: list) -> tuple | None:
    """(last.pt, best.pt's weights or None) after checking they continue this run; None without last.pt."""
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if not last_path.exists():
        return None
    ckpt = load_checkpoint(last_path, expect_classes=classes)
    if ckpt.get("state") is None:
        raise ResumeError(f"{last_path} holds no training state to resume from")
    name = getattr(model, "model_name", None)
    if name is not None and ckpt["model_name"] != name:
        raise ResumeError(f"{last_path} is a checkpoint of {ckpt['model_name']!r}, not of {name!r}")
    # An exact continuation needs the same recipe; only where/how the run is watched may change, and
    # the split of the global batch over processes (batch_size * processes must stay the same).
    saved, world = ckpt.get("config", {}), runtime.world_size()
    saved_world = ckpt["state"].get("world_size", 1)
    changed = sorted(k for k, v in cfg.to_dict().items()
                     if k not in RESUME_MAY_CHANGE | {"batch_size"} and k in saved and saved[k] != _plain(v))
    if changed:
        raise ResumeError(f"cannot resume from {last_path}: the config changed in {changed} "
                         f"(saved {[saved[k] for k in changed]}, now {[getattr(cfg, k) for k in changed]}); "
                         "start a new run (another out_dir, or resume=False)")
    if "batch_size" in saved and saved["batch_size"] * saved_world != cfg.batch_size * world:
        raise ResumeError(f"cannot resume from {last_path}: its global batch was {saved_world} process(es) x "
                         f"batch_size {saved['batch_size']}, now {world} x {cfg.batch_size}; keep "
                         "batch_size x processes the same")
    best = load_checkpoint(best_path)["state_dict"] if best_path.exists() else None
    return ckpt, best


def restore_resume_state(out_dir: Path, model: nn.Module, optimizer, scheduler, scaler, cfg: TrainConfig,
                         classes: list) -> TrainState | None:
    """Load out_dir/last.pt into the model, optimizer, scheduler, scaler and RNGs; None when it is absent.

    Rank 0 reads and checks the files and sends them to the other ranks (which may not share its disk).
    RNG states come back exactly when the number of processes is the one saved; with another number,
    each rank re-seeds from (seed, rank, epoch).
    """
    found = None
    if runtime.is_main():
        try:
            found = ("ok", _read_resume(out_dir, model, cfg, classes))
        except (ValueError, OSError) as e:   # raised on every rank below, so none waits for the others
            found = ("error", e)
    found = ddp.broadcast_object(found)
    if found[0] == "error":
        raise found[1]
    if found[1] is None:
        return None
    ckpt, best_state = found[1]
    state = ckpt["state"]
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    st = TrainState(state["history"], state["epoch"], state["bad_epochs"], best_state)
    st.history["resumed_from_epoch"] = st.start_epoch
    for k in HISTORY_KEYS:      # a key added since last.pt was written: unknown (None) for its epochs
        st.history.setdefault(k, [None] * len(st.history["train_loss"]))
    world, rank = runtime.world_size(), runtime.rank()
    if state.get("world_size", 1) == world:
        runtime.set_rng_state(state["rng_by_rank"][rank] if world > 1 else state["rng"])
    else:
        runtime.seed_everything(runtime.rank_seed(cfg.seed, rank, st.start_epoch))
    return st


def end_of_epoch(st: TrainState, record: dict, metric: float, epoch: int, model, optimizer, scheduler, scaler,
                  cfg: TrainConfig, classes: list, out_dir: Path | None) -> None:
    """Record the epoch, keep the best weights, decide early stopping, write best.pt and last.pt (rank 0)."""
    h = st.history
    for k in HISTORY_KEYS:
        h[k].append(float(record[k]))
    h["completed_epochs"] = epoch + 1
    metrics = {"epoch": epoch + 1, **record}
    if improved(metric, h["best_metric"], cfg.monitor):
        h.update(best_epoch=epoch + 1, best_metric=float(metric))
        st.bad_epochs = 0
        st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if out_dir is not None:
            h["best_checkpoint"] = str(out_dir / "best.pt")
            if runtime.is_main():
                save_checkpoint(out_dir / "best.pt", model, classes=classes, config=cfg.to_dict(), metrics=metrics)
    else:
        st.bad_epochs += 1
    if cfg.early_stopping_patience is not None and st.bad_epochs >= cfg.early_stopping_patience:
        h["stopped_early"] = True
    if out_dir is None:
        return
    h["last_checkpoint"] = str(out_dir / "last.pt")
    world = runtime.world_size()
    rngs = ddp.all_gather_object(runtime.rng_state()) if world > 1 else None   # every rank takes part
    if runtime.is_main():
        state = {"epoch": epoch + 1, "history": h, "bad_epochs": st.bad_epochs, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "scaler": scaler.state_dict(), "rng": runtime.rng_state(), "world_size": world,
                 **({"rng_by_rank": rngs} if rngs else {})}
        save_checkpoint(out_dir / "last.pt", model, classes=classes, config=cfg.to_dict(), metrics=metrics,
                        state=state)


