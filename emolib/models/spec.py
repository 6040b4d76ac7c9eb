"""ModelSpec: what a model expects as input. Every transform in emolib is derived from it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    input_size: int                      # square side in pixels fed to the network
    channels: int                        # 1 = grayscale; 3 = grayscale face repeated to RGB
    mean: tuple[float, ...]              # per-channel, applied after scaling to [0, 1]
    std: tuple[float, ...]
    target_layer: str                    # dotted module path Grad-CAM hooks (e.g. "features.3")
    is_vit: bool = False                 # Grad-CAM needs the token -> grid reshape
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean/std must have one value per channel")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


def grayscale_spec(size: int, target_layer: str, mean: float = 0.5, std: float = 0.5) -> ModelSpec:
    return ModelSpec(size, 1, (mean,), (std,), target_layer)


def imagenet_spec(size: int, target_layer: str, is_vit: bool = False) -> ModelSpec:
    return ModelSpec(size, 3, IMAGENET_MEAN, IMAGENET_STD, target_layer, is_vit=is_vit)
