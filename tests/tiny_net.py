"""The tests' smallest trainable model: one strided conv and a linear layer on 48 px gray faces, with the ModelSpec
and registry name a checkpoint records (no BatchNorm, no dropout: runs compare exactly)."""
from torch import nn

from emolib.core.spec import grayscale_spec


class TinyNet(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 11 * 11, num_classes))
        self.spec = grayscale_spec(48, "net.0")
        self.model_name = "tiny"

    def forward(self, x):
        return self.net(x)
