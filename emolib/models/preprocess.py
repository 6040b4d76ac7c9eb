"""Where a face becomes model input: THE preprocessing, derived from the model's ModelSpec.

Training (`FaceLoader`), evaluation, Grad-CAM, the recognizer and the webcam loop all call
`to_model_input`, so a model sees the same numbers wherever it runs. The face crop itself (the
framing around a detected face) is made before this, in `emolib.faces.align`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from emolib.core import runtime
from emolib.core.spec import ModelSpec

__all__ = ["fit_to_spec", "to_model_input", "to_unit"]


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,H,W) or (B,1,H,W) -> float32 (B,1,H,W) in [0, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected (B,H,W) or (B,1,H,W) grayscale images, got shape {tuple(images.shape)}")
    return images.float().div_(255.0)


def fit_to_spec(x: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """float (B,1,H,W) in [0,1] -> (B, spec.channels, S, S) normalized by the spec's mean/std."""
    size = spec.input_size
    if x.shape[-2:] != (size, size):
        # antialias matters only when shrinking; it is a no-op cost-wise for the usual upscaling.
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < max(x.shape[-2:]))
    if spec.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    # pinned, non-blocking copies: a plain tensor made on the GPU waits for the work queued before it
    mean = runtime.to_device(torch.tensor(spec.mean, dtype=x.dtype), x.device).view(1, -1, 1, 1)
    std = runtime.to_device(torch.tensor(spec.std, dtype=x.dtype), x.device).view(1, -1, 1, 1)
    return (x - mean) / std


def to_model_input(images: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """THE preprocessing: uint8 gray faces (B,H,W) or (B,1,H,W) on any device ->
    float32 (B, spec.channels, spec.input_size, spec.input_size), scaled to [0,1], resized,
    repeated to 3 channels when the spec asks for it, normalized by the spec's mean/std."""
    return fit_to_spec(to_unit(images), spec)
