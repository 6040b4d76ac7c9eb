"""How much to trust a class activation map: faithfulness measures and notebook 05's evidence rows.

Kept apart from the methods (`emolib.cam.maps`), as pytorch-grad-cam keeps its metrics apart.

- `mask_energy_share`: the share of a map's mass inside an evidence mask (the synthetic source
  draws, per image, the facial regions that carry its class). Chance level is the mask's area
  share (`mask_area_share`); `mask_share_ceiling` is the most that any map computed on a layer's
  grid (`map_grid`) can score once resized to the image, however right it is.
- `deletion_curve` / `deletion_auc`: the model's confidence as the most-highlighted pixels are
  replaced by a blurred copy (Petsiuk et al. 2018, RISE). A faithful map makes confidence drop
  fast, so a lower area under the curve is better.
- `evidence_row`: both measures for one `CamVariant` (a model's maps made one way), with the
  ceiling and the model-randomization check of Adebayo et al. (2018): the same maps from an
  untrained copy of the model, which show what the image alone (its edges) scores.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.v2 import functional as TF

from emolib.cam.maps import as_model_input, compute_cam, eval_mode, map_grid
from emolib.core.runtime import module_device
from emolib.core.settings import CamVariant
from emolib.models import untrained_like
from emolib.models.inference import channels_last_on_cpu

__all__ = ["CamVariant", "deletion_auc", "deletion_curve", "evidence_row", "evidence_score", "evidence_table", "mask_area_share",
           "mask_energy_share", "mask_share_ceiling"]


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


def mask_share_ceiling(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Per mask, the highest `mask_energy_share` that any map computed on a `grid` (h, w) and
    resized bilinearly to the mask's size (as pytorch-grad-cam does, with cv2) can reach.

    Such a map is a nonnegative sum of resized one-cell bumps, and a ratio of sums is at most the
    best of its terms, so the ceiling is the share of the best single bump. Resizing is separable:
    the bump of cell (i, j) is ``ry[:, i] * rx[:, j]``, the resized columns of an identity.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim not in (2, 3):
        raise ValueError(f"expected masks (H,W) or (N,H,W), got shape {masks.shape}")
    (h, w), (gh, gw) = masks.shape[-2:], grid
    ry = cv2.resize(np.eye(gh, dtype=np.float32), (gh, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    rx = cv2.resize(np.eye(gw, dtype=np.float32), (gw, w), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    inside = ry.T @ masks.astype(np.float64) @ rx                        # (..., gh, gw)
    total = np.outer(ry.sum(axis=0), rx.sum(axis=0))
    return (inside / total).max(axis=(-2, -1))


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
    x, _ = as_model_input(model, inputs)
    cams_t = torch.as_tensor(np.asarray(cams, dtype=np.float32))
    if cams_t.ndim != 3 or len(cams_t) != len(x):
        raise ValueError(f"cams must be (N,H,W) with N={len(x)}, got shape {tuple(cams_t.shape)}")
    side = x.shape[-2:]
    if cams_t.shape[-2:] != side:
        cams_t = F.interpolate(cams_t[:, None], size=side, mode="bilinear", align_corners=False)[:, 0]
    fractions = np.linspace(0.0, 1.0, steps + 1)
    device = module_device(model)
    n_pix = side[0] * side[1]
    curves = []
    with eval_mode(model), channels_last_on_cpu(model):      # forward passes only: NHWC is faster on a CPU
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


def evidence_row(model: nn.Module, faces: np.ndarray, targets, variant: CamVariant, masks: np.ndarray | None = None,
                 steps: int = 10, seed: int = 0) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Both measures for the maps `variant` makes of `model` on uint8 `faces` for `targets`.

    Returns ``(row, deletion curve)``; the curve is the confidence in `targets` (None: the
    predicted classes), the class the maps are made for. The row holds ``deletion_auc`` and, with evidence `masks`,
    `evidence_score`'s figures plus ``map_grid`` (the grid the map is computed on; the input size
    for guided maps), ``ceiling`` (mean `mask_share_ceiling` on that grid) and
    ``untrained_mask_share``: the same maps from an untrained copy of the model (seeded by
    `seed`), the model-randomization check of Adebayo et al. (2018). A share far above the
    untrained one comes from what the model learnt, not from the image's edges alone.
    """
    maps = compute_cam(model, faces, targets=targets, **variant.options)
    # The curve follows the class the maps were made for: a map of the true class judged by the
    # confidence in the predicted one would score a wrong prediction's map against another class.
    curve = deletion_curve(model, faces, maps, steps=steps, targets=targets)
    row = {"deletion_auc": float(deletion_auc(*curve).mean())}
    if masks is not None:
        grid = tuple(np.shape(faces)[-2:]) if variant.guided else map_grid(model, variant.layer)
        with torch.random.fork_rng(devices=[]):      # seeded, without moving the caller's RNG
            torch.manual_seed(seed)
            untrained = untrained_like(model).to(module_device(model))
        untrained_maps = compute_cam(untrained, faces, targets=targets, **variant.options)
        row.update(evidence_score(maps, masks), map_grid="×".join(map(str, grid)),
                   ceiling=float(mask_share_ceiling(masks, grid).mean()),
                   untrained_mask_share=evidence_score(untrained_maps, masks)["mask_energy_share"])
    return row, curve


def evidence_table(nets: dict[str, nn.Module], variants: dict[str, CamVariant], faces: np.ndarray, targets,
                   masks: np.ndarray | None = None, steps: int = 10, seed: int = 0) -> tuple[dict, dict]:
    """Notebook 05's evidence table: ``(rows, deletion curves)``, both keyed by map. `evidence_row` for each of
    `variants` (label -> variant; its model one of `nets`), then per model the random-map baseline,
    ``"<model>/random map"``: pixels deleted in a seeded random order, its row holding ``deletion_auc`` only."""
    rows, curves = {}, {}
    for key, v in variants.items():
        rows[key], curves[key] = evidence_row(nets[v.model], faces, targets, v, masks, steps=steps, seed=seed)
    for name, net in nets.items():
        key, noise = f"{name}/random map", np.random.default_rng(seed).random(faces.shape)
        curves[key] = deletion_curve(net, faces, noise, steps=steps)
        rows[key] = {"deletion_auc": deletion_auc(*curves[key]).mean()}
    return rows, curves

