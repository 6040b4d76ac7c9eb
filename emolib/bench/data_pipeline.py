"""Data pipeline speed: the synthetic generator, and FaceLoader against a torchvision ImageFolder.

The comparison is like for like: the same training images (written as PNG files for ImageFolder),
the same batch size (64), the same input spec (48 px, 1 channel, mean .5, std .5) and equivalent
augmentation (random resized crop, flip, rotation, brightness/contrast), measured within one run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from emolib.core.spec import ModelSpec
from emolib.data.synthetic import generate
from emolib.training.loader import AugmentConfig, FaceLoader

BATCH = 64
SPEC = ModelSpec(input_size=48, channels=1, mean=(0.5,), std=(0.5,), target_layer="features")  # cnn_fer-like
AUG = AugmentConfig(hflip=0.5, rotate_deg=10, crop_scale=(0.8, 1.0), brightness=0.2, contrast=0.2)


def synthetic_faces_per_s(n: int, repeats: int = 2) -> float:
    """Best of `repeats` full generate() calls (parameters, drawing, masks, splits)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        generate(n, seed=0)
        best = min(best, time.perf_counter() - t0)
    return n / best


def _batches_per_s(batches, n_batches: int, warmup: int = 1) -> float:
    it = iter(batches)
    for _ in range(warmup):            # worker start-up and first-touch costs are not throughput
        next(it)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches / (time.perf_counter() - t0)


def _imagefolder_loader(root: Path, num_workers: int):
    from torchvision import datasets
    from torchvision import transforms as T
    tf = T.Compose([
        T.Grayscale(num_output_channels=SPEC.channels),
        T.RandomResizedCrop(SPEC.input_size, scale=AUG.crop_scale, antialias=True),
        T.RandomHorizontalFlip(AUG.hflip),
        T.RandomRotation(AUG.rotate_deg),
        T.ColorJitter(brightness=AUG.brightness, contrast=AUG.contrast),
        T.ToTensor(),
        T.Normalize(SPEC.mean, SPEC.std),
    ])
    ds = datasets.ImageFolder(str(root), transform=tf)
    return torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=num_workers,
                                       drop_last=True, persistent_workers=False)


def run(quick: bool = False) -> dict[str, float]:
    from PIL import Image

    n = 2000 if quick else 6000
    figures = {"synthetic_faces_per_s": synthetic_faces_per_s(n)}

    train = generate(n, seed=0).split("train")
    n_cached, n_folder = (40, 6) if quick else (150, 20)

    loader = FaceLoader(train, SPEC, BATCH, train=True, augment=AUG, seed=0, drop_last=True)

    def cached_epochs():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    cached = _batches_per_s(cached_epochs(), n_cached)

    with tempfile.TemporaryDirectory(prefix="emolib_bench_") as tmp:
        root = Path(tmp)
        for i, (img, label) in enumerate(zip(train.images, train.labels)):
            folder = root / train.classes[label]
            folder.mkdir(exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:06d}.png")
        folder0 = _batches_per_s(_imagefolder_loader(root, 0), n_folder)
        folder2 = _batches_per_s(_imagefolder_loader(root, 2), n_folder)

    figures.update(
        loader_batches_per_s_cached=cached,
        loader_batches_per_s_imagefolder=folder0,
        loader_batches_per_s_imagefolder_2workers=folder2,
        loader_speedup_vs_imagefolder=cached / folder0,
        loader_speedup_vs_imagefolder_2workers=cached / folder2,
    )
    return figures
