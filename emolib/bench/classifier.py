"""Classifier throughput: faces per second at batch 1 and batch 64, under torch.inference_mode.

Each model is measured as inference should run it: `prepare_for_inference` (BatchNorm folded,
channels-last) on a preprocessed input of the spec's size, so the figure is the network alone.
The speedup of that preparation over the plain eval-mode model is measured in the same run.
Figures: ``classifier_faces_per_s_bs{1,64}_<model>``, ``classifier_prepare_speedup_bs64_<model>``.
"""
from __future__ import annotations

import time

import torch

from ..models import create
from ..models.inference import prepare_for_inference, to_channels_last

MODELS = {   # name -> create() keywords
    "fer2013-mini-xception": {},
    "cnn_fer": {},
    "mobilenet_v2": {"input_size": 96},
    "vit_small_48": {},
}


def faces_per_second(model: torch.nn.Module, x: torch.Tensor, min_seconds: float, warmup: int = 3) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < min_seconds or n < 3:
            model(x)
            n += 1
    return n * x.shape[0] / elapsed


def run(quick: bool = False) -> dict[str, float]:
    seconds = 0.3 if quick else 2.0
    out = {}
    for name, kw in MODELS.items():
        torch.manual_seed(0)
        model = create(name, **kw).eval()
        fast = prepare_for_inference(model)
        s, c = model.spec.input_size, model.spec.channels
        for bs in (1, 64):
            x = torch.randn(bs, c, s, s)
            out[f"classifier_faces_per_s_bs{bs}_{name}"] = faces_per_second(fast, to_channels_last(x), seconds)
        plain = faces_per_second(model, x, seconds)
        out[f"classifier_prepare_speedup_bs64_{name}"] = out[f"classifier_faces_per_s_bs64_{name}"] / plain
    return out
