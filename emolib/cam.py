"""Class activation maps on pytorch-grad-cam, and two measures of how much to trust them.

`compute_cam` hooks the layer named by the model's ModelSpec (``spec.target_layer``), reshapes ViT
tokens to a grid (``spec.is_vit``) and releases every hook when it returns (the CAM objects are used
as context managers); ``guided=True`` sharpens the map to pixels with guided backpropagation
(Guided Grad-CAM). `overlay` draws a map on a face. The measures:

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

import copy
import math
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, GuidedBackpropReLUModel, HiResCAM, LayerCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torchvision.transforms.v2 import functional as TF

from .models.preprocess import to_model_input
from .models import untrained_like
from .runtime import module_device
from .settings import check_field_types, from_mapping

__all__ = ["METHODS", "CamVariant", "compute_cam", "deletion_auc", "deletion_curve", "evidence_row", "evidence_score",
           "guided_saliency", "map_grid", "mask_area_share", "mask_energy_share", "mask_share_ceiling", "overlay",
           "target_layer", "vit_reshape_transform"]

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


def _reshape_transform(spec):
    """What turns the hooked layer's output into a (B,C,H,W) grid: None for CNNs, tokens to grid for ViTs."""
    if not spec.is_vit:
        return None
    prefix = int(spec.extra.get("prefix_tokens", 1))
    return lambda tokens: vit_reshape_transform(tokens, prefix)


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
                batch_size: int = 64, layer: str | None = None, eigen_smooth: bool = False,
                guided: bool = False) -> np.ndarray:
    """Class activation maps (N,H,W) float32 in [0,1], one per input.

    `inputs`: uint8 gray faces (N,H,W) (preprocessed from the model's spec; maps come back at the
    faces' size) or a float (N,C,H,W) model input (maps at the input size). `targets`: class index
    per input, or None for the predicted class. `method`: a key of `METHODS`. `layer`: a dotted
    module path to hook instead of ``model.spec.target_layer`` (e.g. a shallower, finer layer).
    `eigen_smooth`: keep only the first principal component of the weighted activations
    (pytorch-grad-cam's option), which removes much of the diffuse noise of shallow layers.
    `guided`: Guided Grad-CAM (Selvaraju et al. 2017): the map times the pixel-level saliency of
    guided backpropagation (`guided_saliency`), rescaled to a peak of 1; the layer's map says
    which region, the saliency which pixels in it.
    """
    if method not in METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {sorted(METHODS)}")
    x, face_size = _as_model_input(model, inputs)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(targets) != len(x):
            raise ValueError(f"{len(targets)} targets for {len(x)} inputs")
    device = module_device(model)
    out = []
    with _eval_mode(model), METHODS[method](model=model, target_layers=[target_layer(model, layer)],
                                            reshape_transform=_reshape_transform(model.spec)) as cam:
        for start in range(0, len(x), batch_size):
            # Input gradients keep the graph alive through a frozen backbone, so the hooked layer
            # has a gradient even when none of its parameters train.
            xb = x[start:start + batch_size].to(device).requires_grad_(True)
            tb = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets[start:start + batch_size]]
            out.append(cam(input_tensor=xb, targets=tb, eigen_smooth=eigen_smooth))
    maps = np.concatenate(out) if out else np.zeros((0, *x.shape[-2:]), np.float32)
    if guided:
        maps = _peak_one(maps * guided_saliency(model, x, targets, batch_size))
    if face_size is not None and maps.shape[-2:] != face_size:
        maps = F.interpolate(torch.from_numpy(maps)[:, None], size=face_size, mode="bilinear",
                             align_corners=False)[:, 0].numpy()
    return np.clip(maps, 0.0, 1.0).astype(np.float32)


def _peak_one(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum; a map without mass stays zero."""
    peak = maps.max(axis=(-2, -1), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> np.ndarray:
    device = module_device(model)
    with _eval_mode(model):
        preds = [model(x[s:s + batch_size].to(device)).argmax(1).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)


def guided_saliency(model: nn.Module, x: torch.Tensor, targets=None, batch_size: int = 64) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015) of each input's target class score:
    |d score / d pixel|, the maximum over channels (Simonyan et al. 2014), (N,H,W) float32.

    `x` is a preprocessed (N,C,H,W) model input; `targets` None means the predicted classes.
    Guided backpropagation changes how gradients pass the ``nn.ReLU`` modules, so a model without
    any is refused. pytorch-grad-cam's implementation swaps every ReLU for a guided one and back,
    leaving one shared ``nn.ReLU`` in all their places, so it runs on a copy: the caller's model
    keeps its own modules (which Grad-CAM hooks by name).
    """
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(f"guided backpropagation needs nn.ReLU activations; "
                         f"{getattr(model, 'model_name', type(model).__name__)} has none")
    targets = _predict(model, x, batch_size) if targets is None else np.asarray(targets, dtype=np.int64)
    twin = copy.deepcopy(model).eval().requires_grad_(False)    # input gradients only: no weight gradients
    guided = GuidedBackpropReLUModel(twin, device=module_device(twin))
    # The library backpropagates the first image's score only: one image per call.
    grads = [guided(x[i:i + 1].clone(), target_category=int(t)) for i, t in enumerate(targets)]
    return np.abs(np.stack(grads)).max(axis=-1).astype(np.float32) if grads else np.zeros((0, *x.shape[-2:]), np.float32)


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


def map_grid(model: nn.Module, layer: str | None = None) -> tuple[int, int]:
    """The (h, w) grid a map of `model` is computed on at `layer` (default: the spec's), before it
    is resized to the image: the finest detail a map from that layer can show."""
    spec = model.spec
    seen = []
    handle = target_layer(model, layer).register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        with torch.no_grad(), _eval_mode(model):
            model(torch.zeros(1, spec.channels, spec.input_size, spec.input_size,
                              device=module_device(model)))
    finally:
        handle.remove()
    reshape = _reshape_transform(spec)
    return tuple((reshape(seen[0]) if reshape else seen[0]).shape[-2:])


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
    x, _ = _as_model_input(model, inputs)
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


@dataclass(frozen=True)
class CamVariant:
    """One way of making a model's maps: a row of notebook 05's evidence table (profiles write it
    as a mapping: ``{model: cnn_fer, method: hirescam, layer: features.1.2, guided: true}``)."""
    model: str                        # a model of the comparison (its run or registry name)
    method: str = "gradcam"           # a key of METHODS
    layer: str | None = None          # dotted module path; None = the model's spec.target_layer
    eigen_smooth: bool = False        # first principal component only
    guided: bool = False              # Guided Grad-CAM: times the guided-backpropagation saliency

    def __post_init__(self):
        check_field_types(self, "CAM variant option")
        if self.method not in METHODS:
            raise ValueError(f"unknown CAM method {self.method!r}; choose from {sorted(METHODS)}")

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

    def label(self, model: nn.Module) -> str:
        """E.g. ``cnn_fer/guided hirescam/features.3.2``: model, method (with its options), layer."""
        method = ("guided " if self.guided else "") + self.method + ("+eigen-smooth" if self.eigen_smooth else "")
        return f"{self.model}/{method}/{self.layer or model.spec.target_layer}"


def evidence_row(model: nn.Module, faces: np.ndarray, targets, variant: CamVariant, masks: np.ndarray | None = None,
                 steps: int = 10, seed: int = 0) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Both measures for the maps `variant` makes of `model` on uint8 `faces` for `targets`.

    Returns ``(row, deletion curve)``. The row holds ``deletion_auc`` and, with evidence `masks`,
    `evidence_score`'s figures plus ``map_grid`` (the grid the map is computed on; the input size
    for guided maps), ``ceiling`` (mean `mask_share_ceiling` on that grid) and
    ``untrained_mask_share``: the same maps from an untrained copy of the model (seeded by
    `seed`), the model-randomization check of Adebayo et al. (2018). A share far above the
    untrained one comes from what the model learnt, not from the image's edges alone.
    """
    maps = compute_cam(model, faces, targets=targets, **variant.options)
    curve = deletion_curve(model, faces, maps, steps=steps)
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
