"""Classifier throughput: faces per second at batch 1 and batch 64, under torch.inference_mode.

Each model is measured as inference should run it: `prepare_for_inference` (BatchNorm folded,
channels-last) on a preprocessed input of the spec's size, so the figure is the network alone.
The speedup of that preparation over the plain eval-mode model is measured in the same run.
Each figure is the best of several short timing windows (see `faces_per_second`).
Figures: ``classifier_faces_per_s_bs{1,64}_<model>``, ``classifier_prepare_speedup_bs64_<model>``.
"""
from __future__ import annotations

import time

import torch

from emolib.models import create
from emolib.models.inference import prepare_for_inference, to_channels_last

MODELS = {   # name -> create() keywords
    "fer2013-mini-xception": {"pretrained": True},
    "cnn_fer": {},
    "mobilenet_v2": {"input_size": 96},
    "vit_small_48": {},
}


def faces_per_second(model: torch.nn.Module, x: torch.Tensor, window_s: float, repeats: int,
                     warmup: int = 3) -> float:
    """Best of `repeats` timing windows (as timeit does): on a shared machine the best window is the
    one least disturbed by other processes, so it estimates what the cores can do."""
    best = 0.0
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < window_s or n < 2:
                model(x)
                n += 1
            best = max(best, n * x.shape[0] / elapsed)
    return best


def run(quick: bool = False) -> dict[str, float]:
    window_s, repeats = (0.15, 2) if quick else (0.4, 5)
    out = {}
    for name, kw in MODELS.items():
        torch.manual_seed(0)
        model = create(name, **kw).eval()
        fast = prepare_for_inference(model)
        s, c = model.spec.input_size, model.spec.channels
        for bs in (1, 64):
            x = torch.randn(bs, c, s, s)
            out[f"classifier_faces_per_s_bs{bs}_{name}"] = faces_per_second(
                fast, to_channels_last(x), window_s, repeats)
        plain = faces_per_second(model, x, window_s, repeats)
        out[f"classifier_prepare_speedup_bs64_{name}"] = out[f"classifier_faces_per_s_bs64_{name}"] / plain
    return out
