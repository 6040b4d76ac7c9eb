"""Model registry: `create`, `list_models`, `get_spec`, `register`."""
from .registry import create, entry, get_spec, list_models, register
from .spec import ModelSpec

__all__ = ["ModelSpec", "create", "entry", "get_spec", "list_models", "register"]
