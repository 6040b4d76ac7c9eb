"""Vision Transformers from torchvision: `vit_b_16` (ImageNet transfer) and `vit_small_48` (from scratch).

Grad-CAM follows pytorch-grad-cam's ViT recipe: hook the last encoder block's first LayerNorm
(``ln_1``; the class token's final output does not depend on the last block's patch tokens, so
their gradient would be zero) and reshape the tokens, minus the class token
(``spec.extra["prefix_tokens"]``, default 1), to a square grid whose side is the square root of
the token count (`emolib.cam.vit_reshape_transform`; input_size // patch_size for these models).

Freeze policy stages are the encoder blocks; the last stage also holds the final LayerNorm, so
``unfreeze_last(model, k)`` trains the last k blocks (+ that norm) and the head.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer, interpolate_embeddings
from torchvision.models.vision_transformer import vit_b_16 as tv_vit_b_16

from emolib.core.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec
from emolib.models.registry import register
from emolib.models.transfer import imagenet_weights_file
from emolib.models.weights import torchvision_weights


def vit_spec(input_size: int, patch_size: int, num_layers: int, mean, std) -> ModelSpec:
    return ModelSpec(input_size, 3, tuple(mean), tuple(std),
                     f"encoder.layers.encoder_layer_{num_layers - 1}.ln_1", is_vit=True,
                     extra={"patch_size": patch_size})


def _name_parts(model: VisionTransformer) -> None:
    n = len(model.encoder.layers)
    model.head_names = ("heads",)
    stages = [(f"encoder.layers.encoder_layer_{i}",) for i in range(n)]
    stages[-1] = stages[-1] + ("encoder.ln",)
    model.stage_names = tuple(stages)


def _check_size(name: str, input_size: int, patch_size: int) -> None:
    if input_size % patch_size or input_size < patch_size:
        raise ValueError(f"{name}: input_size must be a positive multiple of the patch size {patch_size}, "
                         f"got {input_size}")


# vit_small_48: small enough to train on a CPU at FER2013's native 48 px (1.8M parameters).
SMALL = dict(image_size=48, patch_size=6, num_layers=6, num_heads=4, hidden_dim=192, mlp_dim=384)


@register("vit_small_48", vit_spec(48, SMALL["patch_size"], SMALL["num_layers"], (0.5,) * 3, (0.5,) * 3),
          "Small ViT (6 layers, 4 heads, dim 192, 6 px patches -> 8×8 tokens), 48 px, from scratch")
def vit_small_48(num_classes: int = 7, pretrained: bool = False, dropout: float = 0.0) -> nn.Module:
    if pretrained:
        raise ValueError("vit_small_48 is trained from scratch: no pretrained weights exist")
    model = VisionTransformer(**SMALL, num_classes=num_classes, dropout=dropout)
    _name_parts(model)
    return model


@register("vit_b_16", vit_spec(224, 16, 12, IMAGENET_MEAN, IMAGENET_STD),
          "ViT-B/16, ImageNet transfer (86M params; weights need a download)", weights=torchvision_weights("vit_b_16"))
def vit_b_16(num_classes: int = 7, pretrained: bool = False, input_size: int = 224) -> nn.Module:
    """ViT-B/16; at ``input_size != 224`` pretrained position embeddings are interpolated."""
    _check_size("vit_b_16", input_size, 16)
    model = tv_vit_b_16(weights=None, image_size=input_size)
    if pretrained:
        state = torch.load(imagenet_weights_file("vit_b_16"), map_location="cpu", weights_only=True)
        if input_size != 224:
            state = interpolate_embeddings(input_size, 16, state)
        model.load_state_dict(state, strict=True)
    model.heads.head = nn.Linear(model.heads.head.in_features, num_classes)
    _name_parts(model)
    model.spec = vit_spec(input_size, 16, len(model.encoder.layers), IMAGENET_MEAN, IMAGENET_STD)
    return model
