"""Model registry: `create`, `list_models`, `get_spec`, `register`, `untrained_like`.

Importing this package registers every model family (each module registers its builders).
"""
from emolib.core.spec import ModelSpec
from emolib.models import cnn, convvit, mini_xception, transfer, vit  # noqa: F401,E402  (registration side effect)
from emolib.models.registry import create, entry, get_spec, list_models, register, untrained_like

__all__ = ["ModelSpec", "create", "entry", "get_spec", "list_models", "register", "untrained_like"]
