"""A trained classifier restricted to a subset of its classes, without a new head.

A model trained on the seven emotions (``fer2013-mini-xception``) scores a 5-class test split
only through its own outputs: `restrict_classes` keeps the rows of its last class layer that
belong to the subset. Softmax over the kept logits is exactly the seven-way probabilities
renormalized over the subset (the dropped classes' mass spread in proportion), so nothing is
learnt or initialized anew. The module paths stay as they were (Grad-CAM layers still resolve).
"""
from __future__ import annotations

import torch
from torch import nn

from emolib.core.labels import EMOTIONS, canonical

__all__ = ["restrict_classes"]


def _class_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """The last Linear or Conv2d inside the model's head (``model.head_names``): the class layer."""
    heads = getattr(model, "head_names", None)
    if not heads:
        raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} names no head (.head_names)")
    found = [(f"{h}.{n}" if n else h, m) for h in heads for n, m in model.get_submodule(h).named_modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not found:
        raise ValueError(f"no Linear or Conv2d in the head {heads} of {getattr(model, 'model_name', '?')}")
    return found[-1]


@torch.no_grad()
def restrict_classes(model: nn.Module, classes, from_classes=EMOTIONS) -> nn.Module:
    """`model` (in place) with only the outputs of `classes`, in that order; returns it.

    `from_classes` names the model's outputs (default the seven emotions, or ``model.classes``
    when set). Sets ``model.classes`` and ``model.num_classes`` and records the restriction in
    ``model.restricted_from`` so a report can say so; with the same classes it changes nothing.
    """
    source = tuple(canonical(c) for c in getattr(model, "classes", None) or from_classes)
    wanted = tuple(canonical(c) for c in classes)
    if missing := [c for c in wanted if c not in source]:
        raise ValueError(f"cannot restrict to {missing}: the model's outputs are {list(source)}")
    if wanted == source:                      # nothing to drop: the model as it is
        model.classes, model.num_classes = wanted, len(wanted)
        return model
    name, layer = _class_layer(model)
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if out != len(source):
        raise ValueError(f"{name} has {out} outputs but {len(source)} class names were given")
    keep = torch.tensor([source.index(c) for c in wanted])
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, len(keep), bias=layer.bias is not None)
    else:
        new = nn.Conv2d(layer.in_channels, len(keep), layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, bias=layer.bias is not None, padding_mode=layer.padding_mode)
    new = new.to(layer.weight.device, layer.weight.dtype)
    new.weight.copy_(layer.weight[keep])
    if layer.bias is not None:
        new.bias.copy_(layer.bias[keep])
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
    model.classes, model.num_classes, model.restricted_from = wanted, len(wanted), source
    return model
