"""A small model registry in the style of timm: a name maps to a builder and its ModelSpec.

Builders take ``num_classes`` and ``pretrained`` (plus their own keywords) and return an
``nn.Module``; `create` attaches the spec as ``model.spec`` so every caller can derive
preprocessing from the model itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from emolib.core.spec import ModelSpec
from emolib.models.weights import Weights


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., nn.Module]
    spec: ModelSpec
    description: str
    weights: Weights | None      # where `pretrained=True` weights come from; None: trained from scratch only

    @property
    def offline_pretrained(self) -> bool:
        """Pretrained weights available without a network (a registry package carries them)."""
        return self.weights is not None and not self.weights.needs_download

    @property
    def needs_download(self) -> bool:
        """Pretrained weights come only from the official download."""
        return self.weights is not None and self.weights.needs_download


_REGISTRY: dict[str, Entry] = {}


def register(name: str, spec: ModelSpec, description: str = "", *, weights: Weights | None = None):
    """Decorator registering a builder under `name` with its weights record; a second registration of
    a name raises."""
    def wrap(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = Entry(name, builder, spec, description or (builder.__doc__ or "").strip().split("\n")[0],
                                weights)
        return builder
    return wrap


def entry(name: str) -> Entry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def get_spec(name: str) -> ModelSpec:
    return entry(name).spec


def create(name: str, num_classes: int = 7, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered model; the returned module carries ``.spec`` and ``.model_name``."""
    e = entry(name)
    model = e.builder(num_classes=num_classes, pretrained=pretrained, **kwargs)
    # A builder whose input depends on its keywords (e.g. input_size) sets its own spec.
    if not isinstance(getattr(model, "spec", None), ModelSpec):
        model.spec = e.spec  # type: ignore[attr-defined]
    if pretrained and e.weights is not None and e.weights.framing is not None:
        model.spec = model.spec.with_framing(e.weights.framing)   # crop photos as the weights' faces were
    model.model_name = name  # type: ignore[attr-defined]
    # What emolib.models.checkpoint needs to rebuild the same architecture from a checkpoint.
    model.model_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    model.num_classes = num_classes  # type: ignore[attr-defined]
    return model


def untrained_like(model: nn.Module) -> nn.Module:
    """A model of the same architecture as `model` (built by `create` from what it recorded on the
    model) with no training and no pretrained weights (``pretrained=False``); every module that can
    re-initializes itself too (``reset_parameters``), so nothing a builder set up survives. Seed
    torch's RNG first for a repeatable one."""
    for attr in ("model_name", "num_classes", "model_kwargs"):
        if not hasattr(model, attr):
            raise ValueError(f"model has no .{attr}: build it with emolib.models.create or load a checkpoint")
    twin = create(model.model_name, num_classes=model.num_classes, pretrained=False, **model.model_kwargs)
    for module in twin.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return twin


def list_models() -> list[str]:
    return sorted(_REGISTRY)
