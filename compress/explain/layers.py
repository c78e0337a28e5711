"""Layers by name: the eligible ones, the default one, and a layer's output for an input (the forward pass
stops there)."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from compress.models.layers import weight_layers

__all__ = ["ELIGIBLE_TYPES", "list_layers", "default_layer", "get_layer", "layer_output", "channel_means"]

ELIGIBLE_TYPES = (nn.Conv2d, nn.Linear)   # images in, so 2-d convolutions; linear layers for MLPs


def list_layers(model: nn.Module) -> list[str]:
    """Names (as in ``named_modules()``) of the Conv2d and Linear layers, in definition order
    (:func:`compress.models.layers.weight_layers`, the one layer selection)."""
    return [name for name, _ in weight_layers(model, types=ELIGIBLE_TYPES) if name]


def default_layer(model: nn.Module) -> str:
    """The last Conv2d; for a model without convolutions, the last hidden Linear layer (not the classifier)."""
    convs = [n for n, _ in weight_layers(model, types=(nn.Conv2d,)) if n]
    if convs:
        return convs[-1]
    linears = [n for n, _ in weight_layers(model, types=(nn.Linear,)) if n]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to look at")
    return linears[-2] if len(linears) > 1 else linears[-1]


def get_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Module]:
    """Resolve a layer name (``None``: :func:`default_layer`). Raises ``ValueError`` listing eligible layers."""
    if layer is None:
        layer = default_layer(model)
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        raise ValueError(f"layer {layer!r} is not a module of {type(model).__name__}; eligible layers: "
                         f"{', '.join(list_layers(model)) or '(none)'}")
    return layer, modules[layer]


class _Stop(Exception):
    """Raised by the probe hook to skip the rest of the forward pass."""


@contextlib.contextmanager
def _probe(module: nn.Module, name: str) -> Iterator[dict[str, torch.Tensor]]:
    """Capture ``module``'s output (first call) in ``box["out"]`` and stop the forward pass there."""
    box: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.ndim not in (2, 4):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"layer {name!r}: output {shape} is not (N, C, H, W) or (N, F); choose a Conv2d or "
                             "Linear layer")
        box["out"] = out
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def layer_output(model: nn.Module, module: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """``module``'s output (named ``name`` in errors) when ``model`` runs on ``x``; the rest of the forward is
    skipped. ValueError if the module is not called or its output is not ``(N, C, H, W)``/``(N, F)``."""
    with _probe(module, name) as box:
        try:
            model(x)
        except _Stop:
            pass
    if "out" not in box:
        raise ValueError(f"layer {name!r} is not called in {type(model).__name__}'s forward pass")
    return box["out"]


def channel_means(out: torch.Tensor) -> torch.Tensor:
    """Per-channel mean activation: (N, C, H, W) -> (N, C); (N, F) unchanged."""
    return out.mean((2, 3)) if out.ndim == 4 else out
