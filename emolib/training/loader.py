"""Batches over cached FaceArrays, preprocessed from a ModelSpec and augmented on the training device.

The whole uint8 image array goes to the device once; a batch is an index into it. Preprocessing is
`emolib.models.preprocess` (from the model's ModelSpec), augmentation `emolib.training.augment`. Every
random number comes from a CPU ``torch.Generator`` seeded by (seed, epoch), so an epoch's batches
are a pure function of those two numbers, on any device, and a resumed run sees exactly the
batches it would have seen.

A batch's target is its rows' labels, except on a training loader over arrays with FER+ ``targets``
(`emolib.data.ferplus`): ``crossentropy`` and ``multi_target`` yield the rows' distributions (N×C float) and
``probability`` a label drawn from each row's distribution, anew at each use (`FaceLoader.batch_targets`).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from emolib.core.runtime import resolve_device, to_device
from emolib.core.spec import ModelSpec
from emolib.data.arrays import FaceArrays
from emolib.models.preprocess import fit_to_spec, to_unit
from emolib.training.augment import AugmentConfig, augment_batch, erase

__all__ = ["AugmentConfig", "FaceLoader", "class_weights", "epoch_generator"]


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
    1/count(class), so every class is seen about equally often. `target_mode` says what a batch's target
    is (see the module docstring): "labels", or on a training loader a FER+ label mode.
    """

    def __init__(self, arrays: FaceArrays, spec: ModelSpec, batch_size: int = 64, *, train: bool = False,
                 augment: AugmentConfig | None = None, balanced: bool = False, seed: int = 0,
                 device="cpu", drop_last: bool = False):
        # device: a name or torch.device (emolib.core.runtime.resolve_device); "auto" = CUDA when present
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
        self.target_mode = arrays.label_mode if train and arrays.targets is not None else "labels"
        if self.target_mode == "majority":     # the targets are the labels, one-hot
            self.target_mode = "labels"
        if self.target_mode != "labels":       # the draws of "probability" are made on the CPU generator
            self._targets = torch.from_numpy(np.asarray(arrays.targets, dtype=np.float32))
            self._targets = self._targets if self.target_mode == "probability" else self._targets.to(self.device)
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
        on_device = to_device(order, self.device)      # one copy an epoch, not one a batch
        for b in range(len(self)):
            rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = on_device[rows]
            yield self.make_batch(idx, g), self.batch_targets(idx, g, cpu_idx=order[rows])

    def batch_targets(self, idx: torch.Tensor, g: torch.Generator | None = None, *,
                      cpu_idx: torch.Tensor | None = None) -> torch.Tensor:
        """What the loss compares rows `idx` with: their labels, distributions, or labels drawn from those.

        cpu_idx: the same rows on the CPU, where the draws of "probability" are made (saves reading `idx` back)."""
        if self.target_mode == "labels":
            return self._labels[idx]
        if self.target_mode == "probability":
            g = g or epoch_generator(self.seed, self.epoch)
            rows = cpu_idx if cpu_idx is not None else idx.cpu()
            return to_device(torch.multinomial(self._targets[rows], 1, generator=g).squeeze(1), self.device)
        return self._targets[idx]

    def make_batch(self, idx: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        """Preprocessed (and, if configured, augmented) model input for rows `idx`."""
        x = to_unit(self._images[idx])
        if self.augment is None:
            return fit_to_spec(x, self.spec)
        g = g or epoch_generator(self.seed, self.epoch)
        x = fit_to_spec(augment_batch(x, self.augment, g), self.spec)
        if self.augment.erasing > 0:
            x = erase(x, self.augment.erasing, g)
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
