"""Batches over cached FaceArrays, preprocessed from a ModelSpec and augmented on the training device.

The whole uint8 image array goes to the device once; a batch is an index into it. Augmentation is
batched with per-sample random parameters: flip, rotation, random resized crop and perspective are
one sampling grid per image (`affine_grid` + a homography, then `grid_sample`), brightness/contrast
and random erasing are elementwise. Every random number comes from a CPU ``torch.Generator`` seeded
by (seed, epoch), so an epoch's batches are a pure function of those two numbers, on any device,
and a resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime import resolve_device
from ..settings import from_mapping
from ..models.spec import ModelSpec
from .arrays import FaceArrays

__all__ = ["AugmentConfig", "FaceLoader", "class_weights", "stratified_split", "to_model_input",
           "augment_batch", "epoch_generator"]


# --------------------------------------------------------------------------- preprocessing

def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,H,W) or (B,1,H,W) -> float32 (B,1,H,W) in [0, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected (B,H,W) or (B,1,H,W) grayscale images, got shape {tuple(images.shape)}")
    return images.float().div_(255.0)


def _fit_to_spec(x: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """float (B,1,H,W) in [0,1] -> (B, spec.channels, S, S) normalized by the spec's mean/std."""
    size = spec.input_size
    if x.shape[-2:] != (size, size):
        # antialias matters only when shrinking; it is a no-op cost-wise for the usual upscaling.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < max(x.shape[-2:]))
    if spec.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def to_model_input(images: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """THE preprocessing: uint8 gray faces (B,H,W) or (B,1,H,W) on any device ->
    float32 (B, spec.channels, spec.input_size, spec.input_size), scaled to [0,1], resized,
    repeated to 3 channels when the spec asks for it, normalized by the spec's mean/std."""
    return _fit_to_spec(_to_unit(images), spec)


# --------------------------------------------------------------------------- augmentation

@dataclass
class AugmentConfig:
    hflip: float = 0.5                             # probability of a horizontal flip
    rotate_deg: float = 10.0                       # rotation uniform in [-rotate_deg, rotate_deg]
    crop_scale: tuple[float, float] = (0.8, 1.0)   # RandomResizedCrop area range (aspect 3/4..4/3)
    brightness: float = 0.2                        # ColorJitter brightness: factor in [1-b, 1+b]
    contrast: float = 0.2                          # ColorJitter contrast: factor in [1-c, 1+c]
    perspective: float = 0.0                       # RandomPerspective distortion_scale (applied with p=0.5)
    erasing: float = 0.0                           # RandomErasing probability (scale .02-.33, ratio .3-3.3, value 0)

    def __post_init__(self):
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


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _perspective_homographies(n: int, distortion: float, g: torch.Generator) -> torch.Tensor:
    """(n,3,3) homographies in normalized [-1,1] coordinates mapping output points to input points.

    Like torchvision's RandomPerspective: each corner moves inward by up to distortion/2 of the side.
    """
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    inward = -corners.sign()                                    # direction towards the centre
    jitter = torch.rand(n, 4, 2, generator=g) * distortion     # half-side = 1, so *distortion = d/2 of side
    src = corners + inward * jitter                            # where each output corner samples from
    dst = corners.expand(n, 4, 2)
    # Solve the 8 unknowns of H (h33 = 1) from 4 point pairs dst -> src.
    x, y = dst[..., 0], dst[..., 1]
    u, v = src[..., 0], src[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -x * u, -y * u], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -x * v, -y * v], -1)
    a = torch.cat([rows_u, rows_v], 1)                          # (n,8,8)
    b = torch.cat([u, v], 1)                                    # (n,8)
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(n, 1)], 1).view(n, 3, 3)


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment float (B,1,H,W) images in [0,1] with per-sample parameters drawn from `g` (CPU).

    Geometry (flip, rotation, random resized crop, perspective) is one sampling grid per image;
    photometric jitter follows. Random erasing is separate (`_erase`) because, as in torchvision,
    it acts on the normalized tensor.
    """
    n, dev = x.shape[0], x.device
    # Draw every parameter up front, in a fixed order, so the stream does not depend on the config path.
    flip = torch.rand(n, generator=g) < cfg.hflip
    angle = _uniform(g, n, -cfg.rotate_deg, cfg.rotate_deg) * (math.pi / 180)
    lo, hi = cfg.crop_scale
    area = _uniform(g, n, lo, hi)
    log_ratio = _uniform(g, n, math.log(3 / 4), math.log(4 / 3))
    pos = torch.rand(n, 2, generator=g)
    bright = _uniform(g, n, 1 - cfg.brightness, 1 + cfg.brightness)
    contrast = _uniform(g, n, 1 - cfg.contrast, 1 + cfg.contrast)
    do_persp = torch.rand(n, generator=g) < 0.5
    homog = _perspective_homographies(n, cfg.perspective, g) if cfg.perspective > 0 else None

    # Crop width/height as fractions of the image. torchvision re-draws a crop that does not fit;
    # clamping the aspect ratio to [area, 1/area] keeps both sides <= 1 in one draw.
    ratio = torch.minimum(torch.maximum(log_ratio.exp(), area), 1 / area)
    cw = (area * ratio).sqrt().clamp(max=1.0)
    ch = (area / ratio).sqrt().clamp(max=1.0)
    cx = (pos[:, 0] * 2 - 1) * (1 - cw)          # crop centre, normalized coordinates
    cy = (pos[:, 1] * 2 - 1) * (1 - ch)
    sx = torch.where(flip, -cw, cw)
    cos, sin = angle.cos(), angle.sin()
    # input = centre + R(angle) @ diag(sx, ch) @ output  (rotation about the crop centre)
    theta = torch.stack([torch.stack([cos * sx, -sin * ch, cx], -1),
                         torch.stack([sin * sx, cos * ch, cy], -1)], 1)      # (n,2,3)
    if homog is not None:
        eye = torch.eye(3).expand(n, 3, 3)
        homog = torch.where(do_persp.view(n, 1, 1), homog, eye)
        affine3 = torch.cat([theta, torch.tensor([0.0, 0.0, 1.0]).expand(n, 1, 3)], 1)
        full = affine3 @ homog                                               # perspective first, then affine
        grid = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3).to(dev), list(x.shape), align_corners=False)
        pts = torch.cat([grid, torch.ones_like(grid[..., :1])], -1)          # (n,H,W,3)
        mapped = pts @ full.to(dev).transpose(1, 2).unsqueeze(1)             # (n,H,W,3)
        grid = mapped[..., :2] / mapped[..., 2:].clamp(min=1e-6)
    else:
        grid = F.affine_grid(theta.to(dev), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # ColorJitter semantics: brightness scales, contrast blends with the image's mean gray.
    x = (x * bright.to(dev).view(n, 1, 1, 1)).clamp_(0, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast.to(dev).view(n, 1, 1, 1) + mean).clamp_(0, 1)
    return x


def _erase(x: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0) with one box per sample."""
    n, _, h, w = x.shape
    hit = torch.rand(n, generator=g) < p
    area = _uniform(g, n, 0.02, 0.33)
    ratio = _uniform(g, n, math.log(0.3), math.log(3.3)).exp()
    pos = torch.rand(n, 2, generator=g)
    eh = ((area / ratio).sqrt() * h).round().clamp(1, h)
    ew = ((area * ratio).sqrt() * w).round().clamp(1, w)
    y0 = (pos[:, 0] * (h - eh + 1)).floor()
    x0 = (pos[:, 1] * (w - ew + 1)).floor()
    dev = x.device
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    y0, x0, eh, ew, hit = (t.to(dev).view(n, 1, 1) for t in (y0, x0, eh, ew, hit))
    box = (ys >= y0) & (ys < y0 + eh) & (xs >= x0) & (xs < x0 + ew) & hit
    return x.masked_fill(box.unsqueeze(1), 0.0)


# --------------------------------------------------------------------------- loader

def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream is a pure function of (seed, epoch)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class FaceLoader:
    """Iterate (x, y) batches of a FaceArrays on `device`, preprocessed for `spec`.

    train=True shuffles and augments (`augment` defaults to AugmentConfig(); pass
    AugmentConfig.none() to switch augmentation off). train=False keeps the row order and does not
    augment unless an `augment` is given explicitly (e.g. for test-time augmentation).
    balanced=True (training only) draws each epoch's rows with replacement, with probability
    1/count(class), so every class is seen about equally often.
    """

    def __init__(self, arrays: FaceArrays, spec: ModelSpec, batch_size: int = 64, *, train: bool = False,
                 augment: AugmentConfig | None = None, balanced: bool = False, seed: int = 0,
                 device="cpu", drop_last: bool = False):
        # device: a name or torch.device (emolib.runtime.resolve_device); "auto" = CUDA when present
        if len(arrays) == 0:
            raise ValueError(f"no images in {arrays.source or 'the given arrays'}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if balanced and not train:
            raise ValueError("balanced sampling is for training loaders (train=True)")
        self.arrays, self.spec, self.batch_size = arrays, spec, int(batch_size)
        self.train, self.balanced, self.seed, self.drop_last = train, balanced, int(seed), drop_last
        self.augment = augment if augment is not None else (AugmentConfig() if train else None)
        if self.augment is not None and self.augment.is_identity:
            self.augment = None
        self.device = resolve_device(device)
        self.classes = tuple(arrays.classes)
        self.num_classes = len(self.classes)
        self.labels = np.asarray(arrays.labels, dtype=np.int64)
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= self.num_classes):
            raise ValueError(f"labels outside 0..{self.num_classes - 1} in {arrays.source or 'the arrays'}")
        # One copy to the device; batches are index_select on it from here on.
        self._images = torch.from_numpy(np.ascontiguousarray(arrays.images)).to(self.device)
        self._labels = torch.from_numpy(self.labels).to(self.device)
        counts = np.bincount(self.labels, minlength=self.num_classes).astype(np.float64)
        self._sample_weights = torch.from_numpy(1.0 / np.maximum(counts, 1.0)[self.labels])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_indices(self, g: torch.Generator | None = None) -> torch.Tensor:
        """Row order of the current epoch (CPU int64)."""
        n = len(self.labels)
        if not self.train:
            return torch.arange(n)
        g = g or epoch_generator(self.seed, self.epoch)
        if self.balanced:
            return torch.multinomial(self._sample_weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def __iter__(self):
        g = epoch_generator(self.seed, self.epoch)
        order = self.epoch_indices(g)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size].to(self.device)
            yield self.make_batch(idx, g), self._labels[idx]

    def make_batch(self, idx: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """Preprocessed (and, if configured, augmented) model input for rows `idx`."""
        x = _to_unit(self._images[idx])
        if self.augment is None:
            return _fit_to_spec(x, self.spec)
        g = g or epoch_generator(self.seed, self.epoch)
        x = _fit_to_spec(augment_batch(x, self.augment, g), self.spec)
        if self.augment.erasing > 0:
            x = _erase(x, self.augment.erasing, g)
        return x

    def __repr__(self) -> str:
        return (f"FaceLoader(n={len(self.labels)}, batches={len(self)}, batch_size={self.batch_size}, "
                f"train={self.train}, balanced={self.balanced}, augment={self.augment}, "
                f"input={self.spec.channels}x{self.spec.input_size}, device={self.device})")


# --------------------------------------------------------------------------- helpers

def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights for weighted cross-entropy, scaled to mean 1 over present classes.

    A class with no rows gets weight 0 (it never appears as a target, so its weight is unused).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("class_weights needs at least one label")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = 1.0 / counts[present]
    w[present] /= w[present].mean()
    return torch.tensor(w, dtype=torch.float32)


def stratified_split(arrays: FaceArrays, val_frac: float = 0.1, seed: int = 0) -> FaceArrays:
    """Move a stratified share `val_frac` of the 'train' rows of each class to 'val'.

    For sources that ship no validation split; a source that already has 'val' rows is an error
    (re-splitting would silently change an official protocol).
    """
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    n_val = int((arrays.splits == "val").sum())
    if n_val:
        raise ValueError(f"{arrays.source or 'these arrays'} already have {n_val} 'val' rows; not re-splitting")
    rng = np.random.default_rng(seed)
    splits = arrays.splits.copy()
    moved = 0
    for c in range(len(arrays.classes)):
        rows = np.flatnonzero((arrays.splits == "train") & (arrays.labels == c))
        k = int(round(val_frac * rows.size))
        if k:
            splits[rng.permutation(rows)[:k]] = "val"
            moved += k
    if moved == 0:
        raise ValueError(f"no 'train' rows to move to 'val' in {arrays.source or 'these arrays'}")
    out = FaceArrays(images=arrays.images, labels=arrays.labels, splits=splits, classes=arrays.classes,
                     masks=arrays.masks, source=arrays.source, fingerprint=arrays.fingerprint,
                     notes=[*arrays.notes, f"val: stratified {val_frac:.0%} of train (seed={seed}), {moved} rows"],
                     skipped=list(arrays.skipped))
    return out
