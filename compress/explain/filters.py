"""Filter visualization: inputs that maximize a channel's mean activation, by regularized gradient ascent."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from compress.device import model_device
from compress.explain.inputs import eval_mode
from compress.explain.layers import channel_means, get_layer, layer_output
from compress.models.card import card_of

__all__ = ["FilterConfig", "FilterVisualization", "layer_width", "visualize_filters"]


@dataclass
class FilterConfig:
    """Gradient ascent on the input (Erhan et al. 2009) with the regularizers of Yosinski et al. 2015."""

    steps: int = 100              # optimizer steps
    lr: float = 0.05              # Adam learning rate, in input units (normalized pixels) per step
    jitter_px: int | None = None  # random shift of the image each step, at most this many pixels each way
                                  # (None: about 4% of the image side, at least 1: 2 px at 48x48, 1 at 28x28;
                                  # more hurts small images, whose last feature maps are 1-3 pixels wide)
    blur_every: int = 4           # Gaussian blur of the image every this many steps (0: never)
    blur_sigma_px: float = 0.5    # blur standard deviation, pixels
    weight_decay: float = 0.005   # L2 decay: the image shrinks by this fraction after each step
    init_std: float = 0.1         # std of the Gaussian start image, input units
    keep_best: bool = True        # return each channel's image with the highest activation seen (measured
                                  # without jitter after every step), not the last one
    seed: int = 0                 # seeds the start image and the jitter

    def __post_init__(self) -> None:
        for name in ("steps", "jitter_px", "blur_every"):
            if name == "jitter_px" and self.jitter_px is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"FilterConfig.{name} must be a non-negative integer, got {getattr(self, name)!r}")
        for name in ("lr", "blur_sigma_px", "weight_decay", "init_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"FilterConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class FilterVisualization:
    layer: str
    channels: list[int]              # channel (or unit) index per image
    images: torch.Tensor             # float32 (F, C, H, W) inputs found, in model-input units
    activation_start: torch.Tensor   # float32 (F,) mean activation of the channel at the start image
    activation_end: torch.Tensor     # float32 (F,) same at the final image (no jitter)
    config: FilterConfig = field(default_factory=FilterConfig)


def layer_width(model: nn.Module, layer: str | None, input_shape: Sequence[int]) -> int:
    """Channels (or units) of ``layer``'s output for one input of ``input_shape`` (C, H, W)."""
    name, module = get_layer(model, layer)
    with eval_mode(model), torch.no_grad():
        return layer_output(model, module, name, torch.zeros(1, *input_shape, device=model_device(model))).shape[1]


def visualize_filters(model: nn.Module, layer: str | None = None, *, filters: int | Sequence[int] = 16,
                      input_shape: Sequence[int] | None = None, value_range: tuple[float, float] | None = None,
                      init_value: float = 0.0, config: FilterConfig | None = None) -> FilterVisualization:
    """Inputs that maximize the mean activation of channels of ``layer``, one image per channel.

    ``filters``: how many (the first N channels, capped at the layer's width) or which channel indices.
    ``input_shape`` (C, H, W) defaults to the model card's (:func:`compress.models.card_of`).
    ``value_range`` (low, high) clamps the image to valid model inputs (e.g. ``normalizer`` of 0 and 255).
    The start image is ``init_value`` plus Gaussian noise of std ``config.init_std``.
    All channels are optimized together as one batch (eval mode keeps the batch items independent).
    Jitter and blur assume translation-equivariant features; for a model without Conv2d layers (an MLP, whose
    units look at fixed pixels) they are switched off and the returned ``config`` says so.

    Raises ``ValueError`` for an unknown layer (listing the eligible ones), a bad channel or input shape.
    """
    config = config or FilterConfig()
    name, module = get_layer(model, layer)
    shape = _input_shape(model, input_shape)
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        config = dataclasses.replace(config, jitter_px=0, blur_every=0)
    elif config.jitter_px is None:
        config = dataclasses.replace(config, jitter_px=max(1, round(min(shape[1:]) / 24)))
    width = layer_width(model, name, shape)
    channels = list(range(min(filters, width))) if isinstance(filters, int) else [int(c) for c in filters]
    if not channels or any(c < 0 or c >= width for c in channels):
        raise ValueError(f"filters {filters!r}: layer {name!r} has {width} channels; "
                         f"pick 1 or more in [0, {width - 1}]")
    device = model_device(model)
    gen = torch.Generator().manual_seed(config.seed)
    x = torch.randn(len(channels), *shape, generator=gen) * config.init_std + init_value
    if value_range is not None:
        x.clamp_(*value_range)
    x = x.to(device).requires_grad_(True)
    index = torch.tensor(channels, device=device)[:, None]

    def activation(inp: torch.Tensor) -> torch.Tensor:
        return channel_means(layer_output(model, module, name, inp)).gather(1, index)[:, 0]

    # Adam by hand: torch.optim imports torch._dynamo on first use, seconds of start-up for 20 lines of math.
    # The gradient is scaled to unit RMS per image first: activations differ by orders of magnitude between
    # layers and between trained and untrained models (untrained deep nets reach 1e-13), and the step should
    # not. For the same reason the L2 decay is a shrink of the image after each step (Yosinski et al. 2015),
    # not a loss term.
    m1, m2 = torch.zeros_like(x), torch.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    jitter_px = config.jitter_px
    assert jitter_px is not None   # set above
    with eval_mode(model):
        with torch.no_grad():
            start = activation(x)
        best, best_x = start.clone(), x.detach().clone()
        for step in range(1, config.steps + 1):
            (grad,) = torch.autograd.grad(-activation(_jitter(x, jitter_px, gen)).sum(), x)
            with torch.no_grad():
                grad /= grad.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp(min=1e-30)   # unit RMS per image
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (m2 / (1 - beta2 ** step)).sqrt_().add_(eps)
                x.addcdiv_(m1, denom, value=-config.lr / (1 - beta1 ** step))
                x.mul_(1.0 - config.weight_decay)
                if config.blur_every and step % config.blur_every == 0 and config.blur_sigma_px > 0:
                    x.copy_(_blur(x, config.blur_sigma_px))
                if value_range is not None:
                    x.clamp_(*value_range)
                if config.keep_best:
                    now = activation(x)
                    better = now > best
                    best = torch.where(better, now, best)
                    best_x[better] = x[better]
        final = best_x if config.keep_best else x.detach()
        with torch.no_grad():
            end = activation(final)
    return FilterVisualization(name, channels, final.float().cpu(), start.float().cpu(), end.float().cpu(), config)


def _input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    if input_shape is None:
        card = card_of(model)
        if card is None:
            raise ValueError("input_shape: the model has no model card; pass input_shape=(C, H, W)")
        input_shape = card.input_shape
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or any(s <= 0 for s in shape):
        raise ValueError(f"input_shape {tuple(input_shape)!r} must be (C, H, W) with positive sizes")
    return shape


def _jitter(x: torch.Tensor, px: int, gen: torch.Generator) -> torch.Tensor:
    if px <= 0:
        return x
    dy, dx = torch.randint(-px, px + 1, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k1 = torch.exp(-t ** 2 / (2 * sigma_px ** 2))
    k1 = k1 / k1.sum()
    c = x.shape[1]
    k2 = (k1[:, None] * k1[None, :]).expand(c, 1, -1, -1)
    padded = nn.functional.pad(x, (radius,) * 4, mode="replicate")
    return nn.functional.conv2d(padded, k2, groups=c)
