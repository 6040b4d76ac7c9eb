"""Settings dataclasses and their one validation: `TrainConfig`, `AugmentConfig`, `CamVariant`, and the checks
every setting shares.

Pure Python (no torch, no other emolib module), so `emolib.research.profiles` checks a profile's nested
``train``, ``augment`` and ``cam_variants`` sections with the real classes without importing torch (make checks the
profile before every notebook, and the index checks it again), and `emolib.training`, `emolib.cam` and
`emolib.core.runtime` build on it without an import cycle.

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

__all__ = ["Device", "DEVICE_NAME", "TrainConfig", "AugmentConfig", "CamVariant", "CAM_METHODS", "type_ok", "describe",
           "from_mapping", "check_field_types"]

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


@dataclass
class AugmentConfig:
    """The training augmentation (a profile's ``augment`` section); `emolib.training.augment` applies it."""
    hflip: float = 0.5                             # probability of a horizontal flip
    rotate_deg: float = 10.0                       # rotation uniform in [-rotate_deg, rotate_deg]
    crop_scale: tuple[float, float] = (0.8, 1.0)   # RandomResizedCrop area range (aspect 3/4..4/3)
    brightness: float = 0.2                        # ColorJitter brightness: factor in [1-b, 1+b]
    contrast: float = 0.2                          # ColorJitter contrast: factor in [1-c, 1+c]
    perspective: float = 0.0                       # RandomPerspective distortion_scale (applied with p=0.5)
    erasing: float = 0.0                           # RandomErasing probability (scale .02-.33, ratio .3-3.3, value 0)

    def __post_init__(self):
        check_field_types(self, "augmentation option")     # as TrainConfig: "0.5" or True is not a float
        if len(self.crop_scale) != 2 or not all(type_ok(v, float) for v in self.crop_scale):
            raise TypeError(f"augmentation option 'crop_scale': expected two numbers (lo, hi), got {self.crop_scale!r}")
        self.crop_scale = tuple(float(v) for v in self.crop_scale)
        lo, hi = self.crop_scale
        if not (0 < lo <= hi <= 1):
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        for name in ("hflip", "erasing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        for name in ("rotate_deg", "brightness", "contrast", "perspective"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.brightness >= 1 or self.contrast >= 1 or self.perspective > 1:
            raise ValueError("brightness and contrast must be < 1 and perspective <= 1")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (the identity)."""
        return cls(hflip=0.0, rotate_deg=0.0, crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0,
                   perspective=0.0, erasing=0.0)

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        """Build from a params section; unknown keys are an error (a typo must not pass silently)."""
        return from_mapping(cls, d or {}, "augmentation option")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop_scale"] = list(self.crop_scale)
        return d

    @property
    def is_identity(self) -> bool:
        return self == AugmentConfig.none()


# pytorch-grad-cam's methods by the names profiles use; emolib.cam.METHODS maps each to its class.
CAM_METHODS = ("gradcam", "gradcam++", "eigencam", "hirescam", "layercam")


@dataclass(frozen=True)
class CamVariant:
    """One way of making a model's maps: a row of notebook 05's evidence table (profiles write it
    as a mapping: ``{model: cnn_fer, method: hirescam, layer: features.1.2, guided: true}``)."""
    model: str                        # a model of the comparison (its run or registry name)
    method: str = "gradcam"           # one of CAM_METHODS (emolib.cam.METHODS)
    layer: str | None = None          # dotted module path; None = the model's spec.target_layer
    eigen_smooth: bool = False        # first principal component only
    guided: bool = False              # Guided Grad-CAM: times the guided-backpropagation saliency

    def __post_init__(self):
        check_field_types(self, "CAM variant option")
        if self.method not in CAM_METHODS:
            raise ValueError(f"unknown CAM method {self.method!r}; choose from {sorted(CAM_METHODS)}")

    @classmethod
    def from_dict(cls, d: dict) -> "CamVariant":
        """Build from a profile's mapping; unknown keys are an error (a typo must not pass silently)."""
        if not isinstance(d, dict):
            raise TypeError(f"a CAM variant is a mapping like {{model: cnn_fer, method: hirescam}}, got {d!r}")
        if "model" not in d:
            raise ValueError(f"a CAM variant needs a model: {d!r}")
        return from_mapping(cls, d, "CAM variant option")

    @property
    def options(self) -> dict:
        """The keyword arguments of `compute_cam` this variant stands for."""
        return {"method": self.method, "layer": self.layer, "eigen_smooth": self.eigen_smooth, "guided": self.guided}

    def label(self, model) -> str:
        """E.g. ``cnn_fer/guided hirescam/features.3.2``: model, method (with its options), layer."""
        method = ("guided " if self.guided else "") + self.method + ("+eigen-smooth" if self.eigen_smooth else "")
        return f"{self.model}/{method}/{self.layer or model.spec.target_layer}"
