"""`vit_conv_48`: a Vision Transformer for small data, trained from scratch on 48 px gray faces.

A plain ViT (`vit_small_48`) cuts the face into patches with one strided linear projection and
has to learn locality from data; on a few thousand faces it stays at the class prior. Two changes
from the small-data ViT literature make it learn in a CPU budget, and a third is kept for Grad-CAM
(notebook 04 shows each one measured, from `emolib.research.studies`):

- a convolutional stem instead of the patchify projection (Xiao et al. 2021, "Early convolutions
  help transformers see better"): 3×3 stride-2 conv + BatchNorm + ReLU blocks, then a 1×1 conv to
  the token width, so each token already sees a local neighbourhood;
- the token grid as a choice: n stride-2 blocks give (48 / 2**n)² tokens. Two blocks (12×12 tokens,
  4 px) learn; three (6×6 tokens, 8 px, each token seeing a 15 px neighbourhood) learn faster at a
  quarter of the attention cost, so they are the default;
- global average pooling of the tokens instead of a class token (as in Xiao et al. and the ViT
  paper's GAP ablation). It learns no better or worse than a class token here (``pool="cls"``
  builds that variant), but with it every output token feeds the logits, so Grad-CAM can hook the
  final norm, where the maps are the model's last word.

The transformer itself is torchvision's `Encoder` (learned position embeddings, pre-norm blocks,
final LayerNorm). Grad-CAM hooks the final LayerNorm: with mean pooling every output token feeds
the logits, so its tokens, reshaped to the grid (``prefix_tokens`` = 0 or 1), carry the gradient.
Freeze-policy stages: the stem, then the encoder blocks (the last one with the final norm).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torchvision.models.vision_transformer import Encoder

from emolib.core.spec import ModelSpec
from emolib.models.registry import register

IMAGE_SIZE = 48
DEFAULTS = dict(stem=(32, 64, 128), hidden_dim=128, num_layers=4, num_heads=4, mlp_ratio=2.0, pool="mean")


def conv_vit_spec(image_size: int, n_stem: int, pool: str) -> ModelSpec:
    return ModelSpec(image_size, 1, (0.5,), (0.5,), "encoder.ln", is_vit=True,
                     extra={"patch_size": 2 ** n_stem, "prefix_tokens": int(pool == "cls")})


class ConvStemViT(nn.Module):
    def __init__(self, num_classes: int = 7, image_size: int = IMAGE_SIZE, stem: tuple[int, ...] = DEFAULTS["stem"],
                 hidden_dim: int = DEFAULTS["hidden_dim"], num_layers: int = DEFAULTS["num_layers"],
                 num_heads: int = DEFAULTS["num_heads"], mlp_ratio: float = DEFAULTS["mlp_ratio"],
                 pool: Literal["mean", "cls"] = DEFAULTS["pool"], dropout: float = 0.0,
                 attention_dropout: float = 0.0):
        super().__init__()
        stride = 2 ** len(stem)
        if not stem or image_size % stride:
            raise ValueError(f"image_size {image_size} must be a multiple of 2**len(stem) = {stride}")
        if pool not in ("mean", "cls"):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        layers, cin = [], 1
        for width in stem:
            layers += [nn.Conv2d(cin, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        layers.append(nn.Conv2d(cin, hidden_dim, 1))       # Xiao et al.: a 1×1 conv ends the stem
        self.stem = nn.Sequential(*layers)
        self.pool = pool
        self.grid = image_size // stride
        n_tokens = self.grid ** 2 + (pool == "cls")
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden_dim)) if pool == "cls" else None
        self.encoder = Encoder(n_tokens, num_layers, num_heads, hidden_dim, round(hidden_dim * mlp_ratio),
                               dropout, attention_dropout)
        self.heads = nn.Linear(hidden_dim, num_classes)
        self.head_names = ("heads",)
        stages = [("stem",)] + [(f"encoder.layers.encoder_layer_{i}",) for i in range(num_layers)]
        stages[-1] = stages[-1] + ("encoder.ln",)
        self.stage_names = tuple(stages)
        self.spec = conv_vit_spec(image_size, len(stem), pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.stem(x).flatten(2).transpose(1, 2)            # (B, grid², dim)
        if self.class_token is not None:
            tokens = torch.cat([self.class_token.expand(tokens.shape[0], -1, -1), tokens], 1)
        tokens = self.encoder(tokens)
        pooled = tokens[:, 0] if self.pool == "cls" else tokens.mean(1)
        return self.heads(pooled)


@register("vit_conv_48", conv_vit_spec(IMAGE_SIZE, len(DEFAULTS["stem"]), DEFAULTS["pool"]),
          "Small-data ViT: conv stem to a 6×6 token grid, 4 layers, dim 128, mean-pooled; 48 px, from scratch")
def vit_conv_48(num_classes: int = 7, pretrained: bool = False, **kwargs) -> nn.Module:
    if pretrained:
        raise ValueError("vit_conv_48 is trained from scratch: no pretrained weights exist")
    return ConvStemViT(num_classes, **kwargs)
