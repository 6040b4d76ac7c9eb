"""From-scratch CNNs for 48×48 grayscale faces: `cnn_fer` (small, CPU-friendly) and `vgg_fer`.

Every model in emolib names its parts for the freeze policy in `emolib.models.transfer`:
``head_names`` (dotted paths of the classifier) and ``stage_names`` (feature stages, shallow to deep).
"""
from __future__ import annotations

import torch
from torch import nn

from emolib.core.spec import grayscale_spec
from emolib.models.registry import register


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    # bias=False: BatchNorm's shift makes a conv bias redundant. ReLU is not in-place so that
    # Grad-CAM can hook its output safely.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def fc_bn_relu_drop(fin: int, fout: int, p: float) -> list[nn.Module]:
    return [nn.Linear(fin, fout, bias=False), nn.BatchNorm1d(fout), nn.ReLU(inplace=True), nn.Dropout(p)]


class CNNFer(nn.Module):
    """Four conv blocks (32/64/128/256, 48→24→12→6→3 px) and a five-layer FC head.

    Block = conv3×3 + BatchNorm + ReLU + max-pool 2. Head: 2304→512→256→128→64→classes, each hidden
    layer Linear + BatchNorm1d + ReLU + dropout (0.4, 0.2, 0.1, 0.5).
    """
    channels = (32, 64, 128, 256)
    hidden = (512, 256, 128, 64)
    dropouts = (0.4, 0.2, 0.1, 0.5)
    head_names = ("classifier",)
    stage_names = ("features.0", "features.1", "features.2", "features.3")

    def __init__(self, num_classes: int = 7, in_channels: int = 1):
        super().__init__()
        blocks, cin = [], in_channels
        for cout in self.channels:
            blocks.append(nn.Sequential(*conv_bn_relu(cin, cout), nn.MaxPool2d(2)))
            cin = cout
        self.features = nn.Sequential(*blocks)
        layers, fin = [nn.Flatten()], self.channels[-1] * 3 * 3
        for fout, p in zip(self.hidden, self.dropouts):
            layers += fc_bn_relu_drop(fin, fout, p)
            fin = fout
        layers.append(nn.Linear(fin, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGGFer(nn.Module):
    """VGG-style net of Khaireddin & Chen (2021, "Facial Emotion Recognition: State of the Art
    Performance on FER2013", ~73% single-model test accuracy trained from scratch).

    Four stages of two conv3×3 + BatchNorm + ReLU (64/128/256/512), each followed by max-pool 2
    (48→3 px), then FC 4608→4096→4096→classes with dropout (0.2, the default of the authors' code,
    usef-kh/fer). Their code feeds 40 px random crops (2×2 after the pools); here the net takes the
    full 48 px face so it shares the FER2013 preprocessing of the other models. The paper's recipe
    lives in params, not here: SGD with Nesterov momentum 0.9, lr 0.01, weight decay 1e-4,
    batch 64, ReduceLROnPlateau on validation accuracy, ten-crop averaging at test time.
    """
    channels = (64, 128, 256, 512)
    head_names = ("classifier",)
    stage_names = ("features.0", "features.1", "features.2", "features.3")

    def __init__(self, num_classes: int = 7, in_channels: int = 1, dropout: float = 0.2):
        super().__init__()
        stages, cin = [], in_channels
        for cout in self.channels:
            stages.append(nn.Sequential(*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout), nn.MaxPool2d(2)))
            cin = cout
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 3 * 3, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(f"{name} is trained from scratch: no pretrained weights exist (use pretrained=False)")


# Grad-CAM hooks the last block's ReLU (6×6 at 48 px) rather than the pooled 3×3 output.
@register("cnn_fer", grayscale_spec(48, "features.3.2"),
          "4-block CNN + 5-layer FC head, 48 px gray, from scratch (CPU-friendly)")
def cnn_fer(num_classes: int = 7, pretrained: bool = False) -> nn.Module:
    _no_pretrained("cnn_fer", pretrained)
    return CNNFer(num_classes)


@register("vgg_fer", grayscale_spec(48, "features.3.5"),
          "VGG-style 4×2 conv net of Khaireddin & Chen 2021 (~73% on FER2013), 48 px gray, from scratch")
def vgg_fer(num_classes: int = 7, pretrained: bool = False, dropout: float = 0.2) -> nn.Module:
    _no_pretrained("vgg_fer", pretrained)
    return VGGFer(num_classes, dropout=dropout)
