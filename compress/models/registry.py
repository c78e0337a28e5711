"""The model registry: ``register_model`` (a decorator), ``create``, ``list_models``, ``describe``, ``get_spec``.

``create(name, **kw)`` builds a registered model and gives it a :class:`~compress.models.card.ModelCard`
(``model.card``) from which ``card.create()`` rebuilds the same architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from compress.models.builder import build
from compress.models.card import ModelCard
from compress.models.spec import ConvNetSpec, MLPSpec

__all__ = ["register_model", "list_models", "describe", "get_spec", "create"]


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


def create(name: str, *, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 7,
           in_chans: int = 1, input_size: int = 48, dropout: float | None = None,
           min_feature_size: int = 2, channel_divisor: int | None = None, stride_policy: str = "late",
           widths: dict | None = None, **family_options: Any) -> nn.Module:
    """Build the registered model ``name``; defaults suit FER2013 (1x48x48, 7 classes).

    ``create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224)`` is the paper's ImageNet
    network. ``widths`` (``{layer path: sizes}``, :mod:`compress.models.widths`) resizes single layers: a pruned
    model's card rebuilds it this way. ``family_options`` go to the family (e.g. ``act="relu6"``, ``channels=(32, 64)`` for
    ``cnn``, ``hidden=(256, 128)`` for ``mlp``). ``dropout=None`` uses the family's default.

    Raises ValueError (unknown name or option, impossible setting) or TypeError (wrong type).
    """
    spec = get_spec(name, **family_options)
    model = build(spec, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                  in_chans=in_chans, input_size=input_size, dropout=dropout, min_feature_size=min_feature_size,
                  channel_divisor=channel_divisor, stride_policy=stride_policy)
    extra: dict[str, Any] = {"channel_divisor": channel_divisor} if channel_divisor is not None else {}
    if stride_policy != "late":
        extra["stride_policy"] = stride_policy
    if widths:   # a pruned architecture: resize the layers named, then initialize as build does
        from compress.models.builder import init_weights
        from compress.models.widths import apply_widths

        init_weights(apply_widths(model, widths))
        extra["widths"] = {str(k): list(v) for k, v in widths.items()}
    model.card = ModelCard(_jsonable(dict(name=name, width_mult=float(width_mult), depth_mult=float(depth_mult),
                                          num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                                          dropout=dropout, min_feature_size=min_feature_size, **extra,
                                          **family_options)))
    return model


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"model option {obj!r} is not JSON-serializable (use numbers, strings, lists)")
