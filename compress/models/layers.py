"""Which layers a method touches: the one traversal, as torchao's ``filter_fn(module, fqn)`` drives its one.

:func:`weight_layers` walks a model once and yields its conv and linear layers (the layers with a weight
matrix or kernel) in definition order, narrowed by a smallest weight size, by layer types and by a
``filter_fn(module, name)``. Unstructured pruning (``min_numel`` 1024: a 1-channel stem or a narrow depthwise
kernel costs few bytes and hurts most when pruned), Deep Compression's per-layer codecs (``min_numel`` 256, the
whole-model codecs' :attr:`compress.quant.Codec.min_numel`) and explain's layer choices (2-d convolutions and
linear layers) all select through it. The whole-model codecs apply the same rule to a state_dict's tensors
(:func:`compress.quant.quantizable`: a floating tensor of 2 or more dimensions is a conv or linear weight).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["WEIGHT_LAYERS", "weight_layers"]

WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weight_layers(model: nn.Module, *, min_numel: int = 0, types: tuple[type[nn.Module], ...] = WEIGHT_LAYERS,
                  filter_fn: Callable[[nn.Module, str], bool] | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every layer of ``types`` (default: conv and linear) whose weight has at least
    ``min_numel`` elements and that ``filter_fn(module, name)`` accepts, in definition order (``name`` as in
    ``named_modules()``, ``""`` for the model itself)."""
    if isinstance(min_numel, bool) or not isinstance(min_numel, int) or min_numel < 0:
        raise ValueError(f"min_numel must be a non-negative int, got {min_numel!r}")
    out = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, types) or not isinstance(weight, torch.Tensor):
            continue
        if weight.numel() >= min_numel and (filter_fn is None or filter_fn(module, name)):
            out.append((name, module))
    return out
