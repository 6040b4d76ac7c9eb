"""Class activation maps on pytorch-grad-cam: computing them and drawing them.

`compute_cam` hooks the layer named by the model's ModelSpec (``spec.target_layer``), reshapes ViT
tokens to a grid (``spec.is_vit``) and releases every hook when it returns (the CAM objects are used
as context managers); ``guided=True`` sharpens the map to pixels with guided backpropagation
(Guided Grad-CAM). `map_grid` tells the grid a layer's maps are computed on; `overlay` draws a map
on a face. How much to trust a map is measured in `emolib.cam.metrics`.
"""
from __future__ import annotations

import copy
import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUasModule
from pytorch_grad_cam.utils.find_layers import replace_all_layer_type_recursive
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from emolib.core.runtime import module_device
from emolib.models.preprocess import to_model_input

__all__ = ["METHODS", "as_model_input", "compute_cam", "eval_mode", "guided_saliency", "map_grid", "overlay", "target_layer",
           "vit_reshape_transform"]

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


def as_model_input(model: nn.Module, inputs) -> tuple[torch.Tensor, tuple[int, int] | None]:
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
def eval_mode(model: nn.Module):
    """The model in eval mode inside the block, in its own mode again after (pytorch-grad-cam switches to eval())."""
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
    x, face_size = as_model_input(model, inputs)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(targets) != len(x):
            raise ValueError(f"{len(targets)} targets for {len(x)} inputs")
    device = module_device(model)
    out = []
    with eval_mode(model), METHODS[method](model=model, target_layers=[target_layer(model, layer)],
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
    with eval_mode(model):
        preds = [model(x[s:s + batch_size].to(device)).argmax(1).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)


def guided_saliency(model: nn.Module, x: torch.Tensor, targets=None, batch_size: int = 64) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2015) of each input's target class score:
    |d score / d pixel|, the maximum over channels (Simonyan et al. 2014), (N,H,W) float32.

    `x` is a preprocessed (N,C,H,W) model input; `targets` None means the predicted classes.
    Guided backpropagation changes how gradients pass the ``nn.ReLU`` modules, so a model without
    any is refused. It runs on a copy whose ReLUs are pytorch-grad-cam's guided ones: the caller's
    model keeps its own modules (which Grad-CAM hooks by name). The library's
    ``GuidedBackpropReLUModel`` backpropagates one image per call; here a batch's summed target scores
    are backpropagated at once, which gives every image its own gradient (in eval mode no layer mixes
    the images of a batch).
    """
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ValueError(f"guided backpropagation needs nn.ReLU activations; "
                         f"{getattr(model, 'model_name', type(model).__name__)} has none")
    targets = _predict(model, x, batch_size) if targets is None else np.asarray(targets, dtype=np.int64)
    twin = copy.deepcopy(model).eval().requires_grad_(False)    # input gradients only: no weight gradients
    replace_all_layer_type_recursive(twin, nn.ReLU, GuidedBackpropReLUasModule())
    device, grads = module_device(twin), []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device).requires_grad_(True)
        tb = torch.as_tensor(targets[start:start + batch_size], device=device)
        score = twin(xb).gather(1, tb[:, None]).sum()
        grads.append(torch.autograd.grad(score, xb)[0].abs().amax(dim=1).cpu())
    return torch.cat(grads).numpy().astype(np.float32) if grads else np.zeros((0, *x.shape[-2:]), np.float32)


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


def map_grid(model: nn.Module, layer: str | None = None) -> tuple[int, int]:
    """The (h, w) grid a map of `model` is computed on at `layer` (default: the spec's), before it
    is resized to the image: the finest detail a map from that layer can show."""
    spec = model.spec
    seen = []
    handle = target_layer(model, layer).register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        with torch.no_grad(), eval_mode(model):
            model(torch.zeros(1, spec.channels, spec.input_size, spec.input_size,
                              device=module_device(model)))
    finally:
        handle.remove()
    reshape = _reshape_transform(spec)
    return tuple((reshape(seen[0]) if reshape else seen[0]).shape[-2:])
