"""Settings dataclasses and their one validation: `TrainConfig`, and the checks every setting shares.

Pure Python (no torch, no other emolib module), so `emolib.research.profiles` can check a profile's nested
``train`` sections with the real class, and `emolib.training.loop` and `emolib.core.runtime` build on it,
without an import cycle.

The checks: `type_ok` (does a value fit an annotation), `check_field_types` (every field of a
settings dataclass), `from_mapping` (unknown keys are errors that name them), `describe` (an
annotation as a reader writes it, for messages). `Device` annotates a device name.
"""
from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

__all__ = ["Device", "DEVICE_NAME", "TrainConfig", "type_ok", "describe", "from_mapping", "check_field_types"]

# "auto", "cpu", "cuda" or "cuda:<index>"; emolib.core.runtime.resolve_device turns one into a torch.device.
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")


class Device(str):
    """Annotation for a device name (`DEVICE_NAME`); `type_ok` checks the spelling."""


def type_ok(value, hint) -> bool:
    """Does `value` fit the annotation `hint`? The one type check for profiles and settings.

    A bool is not an int; an int is a float; a path is a str; YAML has no tuples, so a list is
    accepted where a tuple or list is annotated; a container is checked as a container only.
    """
    origin = typing.get_origin(hint)
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, a) for a in typing.get_args(hint))
    if origin is not None:                       # list[...] / tuple[...] / dict[...]
        hint = origin
    if hint is Device:
        return isinstance(value, str) and DEVICE_NAME.fullmatch(value) is not None
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if hint in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, hint)


def describe(hint) -> str:
    """A type annotation as a reader writes it (for error messages)."""
    if hint is Device:
        return "'auto' | 'cpu' | 'cuda' | 'cuda:<index>'"
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " | ".join(describe(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "").replace("NoneType", "None")


def from_mapping(cls, d: Mapping[str, Any], what: str):
    """``cls(**d)`` for a settings dataclass; unknown keys are an error naming them and the known
    ones (a typo in a profile must not pass silently). `what` names one key, e.g. "training option"."""
    known = sorted(f.name for f in fields(cls))
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {known}")
    return cls(**d)


def check_field_types(obj, what: str) -> None:
    """Every field of a settings dataclass fits its annotation (`type_ok`), else a TypeError naming
    the field as a `what` (e.g. "training option")."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not type_ok(value, hints[f.name]):
            raise TypeError(f"{what} {f.name!r}: expected {describe(hints[f.name])}, got {value!r} "
                            f"({type(value).__name__})")


Monitor = Literal["val_acc", "val_loss", "val_macro_f1"]


@dataclass
class TrainConfig:
    """Everything `emolib.training.loop.fit` does, as plain values (a profile's ``train`` section)."""
    epochs: int = 20
    max_batches: int | None = None        # training batches per epoch at most (a dry run caps it); None = all
    # Per process: fit takes loaders of this batch; under torchrun each of N processes takes its own,
    # so the global batch (what one optimizer step averages over) is batch_size * N.
    batch_size: int = 64
    # optimizer
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3                      # peak lr (onecycle) / initial lr (the others); not scaled with N
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
    # hardware
    amp: bool = False                     # bf16 autocast where supported, else fp16 + GradScaler (CUDA only)
    channels_last: bool = False           # NHWC weights and batches: faster convolutions on CUDA and on a CPU (not
                                          # mini_xception on a CPU: torch crashes, see MiniXception)
    device: Device = "auto"               # auto | cpu | cuda | cuda:<i> (emolib.core.runtime.resolve_device)
    seed: int = 0
    # files
    out_dir: str | None = None            # where best.pt and last.pt go; None = write no checkpoints
    resume: bool = False                  # continue from out_dir/last.pt when it exists
    progress: bool = True                 # tqdm bar per epoch
    # "tensorboard": every epoch's scalars into out_dir/tensorboard/ (needs out_dir and the tensorboard extra)
    logger: Literal["tensorboard"] | None = None

    def __post_init__(self):
        check_field_types(self, "training option")
        if isinstance(self.out_dir, os.PathLike):
            self.out_dir = os.fspath(self.out_dir)
        if self.epochs < 1 or self.batch_size < 1 or (self.max_batches is not None and self.max_batches < 1):
            raise ValueError("epochs, batch_size and max_batches must be >= 1")
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
