"""Training throughput on CPU: images per second of one full training step at batch 64.

A step is what `emolib.training.loop.fit` does per batch: draw an augmented batch from a training
FaceLoader (default AugmentConfig), forward, cross-entropy, backward, AdamW step. After warm-up
steps, each step is timed alone and the figure uses the median step (robust to other processes
on a shared machine). Figures: ``train_img_per_s_<label>``.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from emolib.data.synthetic import generate
from emolib.models import create
from emolib.training.loader import FaceLoader
from emolib.training.loop import TrainConfig, build_optimizer

BATCH = 64
MODELS = {   # figure label -> (registry name, create() keywords)
    "cnn_fer": ("cnn_fer", {}),
    "mobilenet_v2_96": ("mobilenet_v2", {"input_size": 96}),
    "vit_small_48": ("vit_small_48", {}),
}


def train_images_per_second(name: str, kwargs: dict, arrays, steps: int, warmup: int = 2) -> float:
    torch.manual_seed(0)
    model = create(name, num_classes=len(arrays.classes), **kwargs).train()
    loader = FaceLoader(arrays, model.spec, BATCH, train=True, drop_last=True, seed=0)
    optimizer = build_optimizer(model, TrainConfig())
    times, epoch = [], 0
    while len(times) < warmup + steps:
        loader.set_epoch(epoch)
        batches = iter(loader)
        while True:
            t0 = time.perf_counter()           # the augmented batch is drawn inside the timed step
            batch = next(batches, None)
            if batch is None:
                break
            x, y = batch
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - t0)
            if len(times) == warmup + steps:
                break
        epoch += 1
    return BATCH / statistics.median(times[warmup:])


def run(quick: bool = False) -> dict[str, float]:
    arrays = generate(n=640, seed=0).split("train")     # 512 faces: 8 batches per epoch
    steps = 3 if quick else 8
    return {f"train_img_per_s_{label}": train_images_per_second(name, kw, arrays, steps)
            for label, (name, kw) in MODELS.items()}


if __name__ == "__main__":
    for k, v in run().items():
        print(f"{k} = {v:.1f}")
