"""The model registry, a leaf: ``register_model`` (a decorator), ``list_models``, ``describe``, ``get_spec``.

A family is a function returning an architecture spec; :mod:`compress.models.factory` builds it (``create``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from compress.models.spec import ConvNetSpec, MLPSpec

__all__ = ["register_model", "list_models", "describe", "get_spec"]


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., ConvNetSpec | MLPSpec]
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, description: str = "", **defaults: Any):
    """Decorator registering ``fn(**family_options) -> spec`` under ``name``. A duplicate name raises."""

    def decorator(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(fn, description or (fn.__doc__ or "").strip().split("\n")[0], defaults)
        return fn

    return decorator


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    """``{name: one-line description}`` for every registered model."""
    return {name: _REGISTRY[name].description for name in list_models()}


def get_spec(name: str, **family_options: Any) -> ConvNetSpec | MLPSpec:
    """The architecture spec ``create(name, ...)`` would build. Raises ValueError for unknown names/options."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    try:
        return _REGISTRY[name].fn(**family_options)
    except TypeError as exc:
        raise ValueError(f"model {name!r}: bad option ({exc})") from None
