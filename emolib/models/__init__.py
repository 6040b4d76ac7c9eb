"""Model registry: `create`, `create_like`, `list_models`, `get_spec`, `register`.

Importing this package registers every model family (each module registers its builders).
"""
from .registry import create, create_like, entry, get_spec, list_models, register
from .spec import ModelSpec
from . import cnn, mini_xception, transfer, vit  # noqa: F401,E402  (registration side effect)

__all__ = ["ModelSpec", "create", "create_like", "entry", "get_spec", "list_models", "register"]
