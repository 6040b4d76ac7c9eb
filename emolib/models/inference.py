"""A faster copy of a model for inference only: BatchNorm folded into the preceding conv/linear layer,
and channels-last memory format (oneDNN's fast path on CPU: depthwise convs and max-pooling run
several times faster than in NCHW).

The copy keeps ``.spec`` and ``.model_name`` and gives the same outputs (to float rounding), but
its parameters differ from the original's: never train it or save it as a checkpoint.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from emolib.core.runtime import module_device


def _last_conv(module: nn.Module) -> tuple[nn.Sequential, int] | None:
    """(container, index) of the conv producing `module`'s output when it is a Conv2d or ends in one."""
    if isinstance(module, nn.Sequential) and len(module) and isinstance(module[-1], nn.Conv2d):
        return module, len(module) - 1
    return None


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """In place: every BatchNorm that directly follows a conv/linear in a Sequential is folded into it."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            a, b = seq[i], seq[i + 1]
            if isinstance(b, nn.BatchNorm2d) and isinstance(a, nn.Conv2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(a, b), nn.Identity()
            elif isinstance(b, nn.BatchNorm2d) and (inner := _last_conv(a)) is not None:
                box, j = inner     # e.g. a separable conv (depthwise, pointwise) followed by BN
                box[j], seq[i + 1] = fuse_conv_bn_eval(box[j], b), nn.Identity()
            elif isinstance(b, nn.BatchNorm1d) and isinstance(a, nn.Linear):
                seq[i], seq[i + 1] = fuse_linear_bn_eval(a, b), nn.Identity()
    return model


def prepare_for_inference(model: nn.Module, *, fold_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of `model` tuned for CPU/GPU inference; feed it `to_channels_last(x)` inputs
    (contiguous inputs work too, with one extra layout conversion)."""
    fast = copy.deepcopy(model).eval()
    if fold_bn:
        fold_batchnorm(fast)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def is_channels_last(model: nn.Module) -> bool:
    """Whether `model`'s conv weights are laid out channels-last (those with one input channel or a 1×1 kernel are
    both layouts at once, so the first that tells decides)."""
    for p in model.parameters():
        if p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) != p.is_contiguous():
            return p.is_contiguous(memory_format=torch.channels_last)
    return False


@contextmanager
def channels_last_on_cpu(model: nn.Module):
    """`model` with its 4-D weights channels-last for the block when it sits on a CPU, laid out as before after it.

    oneDNN's NHWC kernels evaluate convolutions and max-pooling faster than NCHW on a CPU (docs/reproduce.md, "Where
    the minutes go"); a gray batch is the same in both layouts, so the weights decide. The parameters stay the same
    objects (an optimizer's references hold). For forward passes: Grad-CAM's backward keeps NCHW, as mini_xception's
    must (`MiniXception.cpu_channels_last`)."""
    convert = module_device(model).type == "cpu" and not is_channels_last(model)
    if convert:
        model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)
