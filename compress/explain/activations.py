"""A layer's feature maps (or units) for one image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compress.device import model_device
from compress.data.bundle import Normalizer
from compress.explain.inputs import eval_mode, model_input
from compress.explain.layers import get_layer, layer_output

__all__ = ["Activations", "activations"]


@dataclass(frozen=True)
class Activations:
    layer: str
    maps: torch.Tensor      # float32 (C, H, W) feature maps, or (F,) units of a Linear layer


@torch.no_grad()
def activations(model: nn.Module, image: torch.Tensor, layer: str | None = None, *,
                normalizer: Normalizer | None = None) -> Activations:
    """``layer``'s output for one image (``C,H,W`` or ``1,C,H,W``; uint8 needs ``normalizer``), eval mode.

    Raises ``ValueError`` for an unknown layer (listing the eligible ones) or a bad image shape.
    """
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or (image.ndim == 4 and len(image) != 1):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image: expected one image (C, H, W) or (1, C, H, W), got {shape}")
    name, module = get_layer(model, layer)
    x = model_input(image.reshape(1, *image.shape[-3:]), normalizer, model_device(model))
    with eval_mode(model):
        out = layer_output(model, module, name, x)
    return Activations(name, out[0].float().cpu())
