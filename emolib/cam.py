"""Class activation maps on pytorch-grad-cam, and two measures of how much to trust them.

`compute_cam` hooks the layer named by the model's ModelSpec (``spec.target_layer``), reshapes ViT
tokens to a grid (``spec.is_vit``) and releases every hook when it returns (the CAM objects are used
as context managers). `overlay` draws a map on a face. The measures:

- `mask_energy_share`: the share of a map's mass inside an evidence mask (the synthetic source
  draws, per image, the facial regions that carry its class). Chance level is the mask's area
  share (`mask_area_share`): a map spread uniformly scores exactly that.
- `deletion_curve` / `deletion_auc`: the model's confidence as the most-highlighted pixels are
  replaced by a blurred copy (Petsiuk et al. 2018, RISE). A faithful map makes confidence drop
  fast, so a lower area under the curve is better.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .data.dataset import to_model_input

__all__ = ["METHODS", "compute_cam", "deletion_auc", "deletion_curve", "evidence_score", "mask_area_share",
           "mask_energy_share", "overlay", "target_layer", "vit_reshape_transform"]

# Grad-CAM averages each channel's gradient over the map, which loses where the evidence is when a
# flatten + fully-connected head follows (cnn_fer, vgg_fer); HiResCAM multiplies gradients and
# activations elementwise and is faithful for such heads (Draelos & Carin 2020); LayerCAM keeps the
# positive gradients elementwise and suits shallower, higher-resolution layers.
METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM, "hirescam": HiResCAM,
           "layercam": LayerCAM}


def target_layer(model: nn.Module, layer: str | None = None) -> nn.Module:
    """The module Grad-CAM hooks: `layer` (a dotted path) or else ``model.spec.target_layer``."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("model has no .spec: build it with emolib.models.create or load a checkpoint")
    path = layer or spec.target_layer
    try:
        return model.get_submodule(path)
    except AttributeError as e:
        raise ValueError(f"target layer {path!r} is not a submodule of "
                         f"{getattr(model, 'model_name', type(model).__name__)}: {e}") from None


def vit_reshape_transform(tokens: torch.Tensor, prefix_tokens: int = 1) -> torch.Tensor:
    """ViT block output (B, prefix + H*W, C) -> (B, C, H, W): drop the class token(s), tokens to a grid."""
    if tokens.ndim != 3:
        raise ValueError(f"expected ViT tokens (B, N, C), got shape {tuple(tokens.shape)}")
    grid = tokens[:, prefix_tokens:, :]
    side = math.isqrt(grid.shape[1])
    if side * side != grid.shape[1]:
        raise ValueError(f"{grid.shape[1]} patch tokens do not form a square grid "
                         f"(after dropping {prefix_tokens} prefix token(s))")
    return grid.reshape(grid.shape[0], side, side, grid.shape[2]).permute(0, 3, 1, 2)


def _as_model_input(model: nn.Module, inputs) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """uint8 faces (N,H,W) -> preprocessed input and the faces' size (maps are returned at that
    size, aligned with the faces and their masks); a float tensor is taken as already preprocessed."""
    if isinstance(inputs, np.ndarray):
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be uint8 faces or a float model-input tensor, got {type(inputs).__name__}")
    if inputs.dtype == torch.uint8:
        return to_model_input(inputs, model.spec), tuple(inputs.shape[-2:])
    if inputs.ndim != 4:
        raise ValueError(f"a float input must be a (N,C,H,W) model input, got shape {tuple(inputs.shape)}")
    return inputs.float(), None


@contextmanager
def _eval_mode(model: nn.Module):
    # pytorch-grad-cam switches the model to eval(); give the caller its mode back.
    was_training = model.training
    try:
        yield model.eval()
    finally:
        model.train(was_training)


def compute_cam(model: nn.Module, inputs, targets=None, method: str = "gradcam",
                batch_size: int = 64, layer: str | None = None, eigen_smooth: bool = False) -> np.ndarray:
    """Class activation maps (N,H,W) float32 in [0,1], one per input.

    `inputs`: uint8 gray faces (N,H,W) (preprocessed from the model's spec; maps come back at the
    faces' size) or a float (N,C,H,W) model input (maps at the input size). `targets`: class index
    per input, or None for the predicted class. `method`: a key of `METHODS`. `layer`: a dotted
    module path to hook instead of ``model.spec.target_layer`` (e.g. a shallower, finer layer).
    `eigen_smooth`: keep only the first principal component of the weighted activations
    (pytorch-grad-cam's option), which removes much of the diffuse noise of shallow layers.
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {sorted(METHODS)}")
    x, face_size = _as_model_input(model, inputs)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(targets) != len(x):
            raise ValueError(f"{len(targets)} targets for {len(x)} inputs")
    spec = model.spec
    reshape = None
    if spec.is_vit:
        prefix = int(spec.extra.get("prefix_tokens", 1))
        reshape = lambda t: vit_reshape_transform(t, prefix)  # noqa: E731
    device = next(model.parameters()).device
    out = []
    with _eval_mode(model), METHODS[method](model=model, target_layers=[target_layer(model, layer)],
                                            reshape_transform=reshape) as cam:
        for start in range(0, len(x), batch_size):
            # Input gradients keep the graph alive through a frozen backbone, so the hooked layer
            # has a gradient even when none of its parameters train.
            xb = x[start:start + batch_size].to(device).requires_grad_(True)
            tb = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[start:start + batch_size]]
            out.append(cam(input_tensor=xb, targets=tb, eigen_smooth=eigen_smooth))
    maps = np.concatenate(out) if out else np.zeros((0, *x.shape[-2:]), np.float32)
    if face_size is not None and maps.shape[-2:] != face_size:
        maps = F.interpolate(torch.from_numpy(maps)[:, None], size=face_size, mode="bilinear",
                             align_corners=False)[:, 0].numpy()
    return np.clip(maps, 0.0, 1.0).astype(np.float32)


def overlay(image_gray_uint8: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """A face (H,W) uint8 with its map (any size, [0,1]) drawn over it as a jet heatmap -> RGB uint8."""
    image = np.asarray(image_gray_uint8)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a gray uint8 (H,W) image, got {image.dtype} {image.shape}")
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != image.shape:
        cam = F.interpolate(torch.from_numpy(cam)[None, None], size=image.shape, mode="bilinear",
                            align_corners=False)[0, 0].numpy()
    rgb = np.repeat(image[..., None], 3, axis=-1).astype(np.float32) / 255.0
    return show_cam_on_image(rgb, np.clip(cam, 0, 1), use_rgb=True, image_weight=image_weight)


def mask_energy_share(cam: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per map, the share of its mass inside the mask: sum(cam·mask) / sum(cam), in [0,1].

    `cam` and `mask` are (H,W) or (N,H,W) of the same shape. A map with no mass at all has no
    share: NaN for that row (count them rather than hide them).
    """
    cam, mask = np.asarray(cam, dtype=np.float64), np.asarray(mask, dtype=bool)
    if cam.shape != mask.shape:
        raise ValueError(f"cam shape {cam.shape} differs from mask shape {mask.shape}")
    if (cam < 0).any():
        raise ValueError("cam values must be >= 0")
    total = cam.sum(axis=(-2, -1))
    inside = (cam * mask).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def mask_area_share(mask: np.ndarray) -> np.ndarray:
    """Per mask, the share of pixels inside it: what a uniform map scores in `mask_energy_share`."""
    return np.asarray(mask, dtype=bool).mean(axis=(-2, -1))


def evidence_score(cams: np.ndarray, masks: np.ndarray) -> dict:
    """Mean `mask_energy_share` over the maps that have mass, the chance level (mean mask area
    share) and how many maps had no mass at all (excluded from the mean; NaN when none has mass)."""
    share = mask_energy_share(cams, masks)
    valid = ~np.isnan(share)
    return {"mask_energy_share": float(share[valid].mean()) if valid.any() else float("nan"),
            "mask_area_share": float(mask_area_share(masks).mean()),
            "maps_without_mass": int((~valid).sum()), "maps": int(share.size)}


def _blurred(x: torch.Tensor) -> torch.Tensor:
    # Sigma of a sixth of the side wipes out facial detail but keeps the overall brightness.
    side = x.shape[-1]
    sigma = max(side / 6.0, 1.0)
    kernel = 2 * int(math.ceil(2 * sigma)) + 1
    kernel = min(kernel, 2 * ((side - 1) // 2) + 1)
    return TF.gaussian_blur(x, kernel_size=[kernel, kernel], sigma=[sigma, sigma])


@torch.no_grad()
def deletion_curve(model: nn.Module, inputs, cams: np.ndarray, steps: int = 10, targets=None,
                   baseline: str = "blur", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Confidence in the target class as the most-highlighted pixels are removed.

    Returns ``fractions`` (steps+1,) from 0 to 1 and ``confidences`` (N, steps+1): softmax
    probability of each input's target (default: its predicted class on the intact input) after
    the top `fraction` of pixels, ranked by the map, are replaced by the baseline ("blur": a
    heavily blurred copy of the input; "mean": the input's mean value). Column 0 is the model's
    confidence on the intact input.
    """
    if baseline not in ("blur", "mean"):
        raise ValueError(f"unknown baseline {baseline!r}; choose 'blur' or 'mean'")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x, _ = _as_model_input(model, inputs)
    cams_t = torch.as_tensor(np.asarray(cams, dtype=np.float32))
    if cams_t.ndim != 3 or len(cams_t) != len(x):
        raise ValueError(f"cams must be (N,H,W) with N={len(x)}, got shape {tuple(cams_t.shape)}")
    side = x.shape[-2:]
    if cams_t.shape[-2:] != side:
        cams_t = F.interpolate(cams_t[:, None], size=side, mode="bilinear", align_corners=False)[:, 0]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    device = next(model.parameters()).device
    n_pix = side[0] * side[1]
    curves = []
    with _eval_mode(model):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            base = _blurred(xb) if baseline == "blur" else xb.mean(dim=(1, 2, 3), keepdim=True).expand_as(xb)
            # rank[i, p] = position of pixel p in image i's descending order (0 = most highlighted)
            order = cams_t[start:start + batch_size].flatten(1).argsort(dim=1, descending=True, stable=True)
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(n_pix).expand_as(order))
            rank = rank.view(-1, 1, *side).to(device)
            if targets is None:
                tb = model(xb).argmax(1)
            else:
                tb = torch.as_tensor(np.asarray(targets)[start:start + batch_size], device=device).long()
            rows = []
            for f in fractions:
                removed = rank < int(round(f * n_pix))
                probs = model(torch.where(removed, base, xb)).softmax(1)
                rows.append(probs.gather(1, tb[:, None])[:, 0].cpu())
            curves.append(torch.stack(rows, 1))
    return fractions, torch.cat(curves).numpy() if curves else np.zeros((0, steps + 1))


def deletion_auc(fractions: np.ndarray, confidences: np.ndarray) -> np.ndarray:
    """Area under each deletion curve (trapezoid rule over `fractions`); lower = more faithful map."""
    f = np.asarray(fractions, dtype=np.float64)
    c = np.asarray(confidences, dtype=np.float64)
    return ((c[..., 1:] + c[..., :-1]) / 2 * np.diff(f)).sum(axis=-1)
