"""Building blocks: small composable modules whose ``forward`` reads top to bottom.

Norm and activation are passed in as callables (``nn.BatchNorm2d``, ``nn.ReLU``...) or ``None``.
Constructors never move to a device or change dtype.

Blocks:
    make_divisible            the torchvision/timm channel-rounding rule
    ConvNormAct               conv -> optional norm -> optional activation
    DepthwiseSeparableConv    MobileNetV1 block; also Keras' SeparableConv2D exactly
    SqueezeExcite             channel attention used by InvertedResidual(se_ratio > 0)
    GlobalAvgPool             nn.AdaptiveAvgPool2d(1) whose gradient keeps the input's memory format
    InvertedResidual          MobileNetV2 block (expand 1x1, depthwise, linear project, residual)
    MLPBlock                  Linear -> optional norm -> optional activation -> dropout
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional

import torch
from torch import nn

__all__ = ["LayerFn", "get_act", "make_divisible", "ConvNormAct", "DepthwiseSeparableConv", "SqueezeExcite",
           "GlobalAvgPool", "spatial_mean", "InvertedResidual", "MLPBlock"]

LayerFn = Optional[Callable[..., nn.Module]]

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "leaky_relu": nn.LeakyReLU,
    "tanh": nn.Tanh,
}


def get_act(name: str | None) -> LayerFn:
    """Activation constructor from a name: ``"relu"``, ``"relu6"``, ``"elu"``, ``"silu"``, ``"gelu"``,
    ``"hardswish"``, ``"tanh"``, ``"leaky_relu"`` or ``"leaky_relu:0.05"`` (negative slope), or None.

    Raises ValueError for an unknown name.
    """
    if name is None or name == "none":
        return None
    base, _, arg = str(name).partition(":")
    if base not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
    if not arg:
        return _ACTIVATIONS[base]
    if base != "leaky_relu":
        raise ValueError(f"activation {name!r}: only leaky_relu takes a parameter (leaky_relu:0.05)")
    try:
        slope = float(arg)
    except ValueError:
        raise ValueError(f"activation {name!r}: negative slope {arg!r} is not a number") from None
    return functools.partial(nn.LeakyReLU, negative_slope=slope)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, at least ``min_value`` (default ``divisor``),
    never going below ``round_limit * value`` (the torchvision/timm rule: never more than 10% down).
    """
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"make_divisible: value must be a positive number, got {value!r}")
    if divisor < 1:
        raise ValueError(f"make_divisible: divisor must be >= 1, got {divisor!r}")
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return int(new_value)


def _same_padding(kernel_size: int, dilation: int = 1) -> int:
    return dilation * (kernel_size - 1) // 2


class ConvNormAct(nn.Sequential):
    """Conv2d -> norm -> activation; ``order="act_norm"`` puts the activation first (Keras' habit of
    ``Conv2D(activation=...)`` followed by ``BatchNormalization``).

    The conv has a bias only when there is no norm, unless ``bias`` says otherwise.
    ``padding=None`` means "same" for odd kernels; pass 0 for Keras' "valid".
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1, *,
                 padding: int | None = None, groups: int = 1, dilation: int = 1, bias: bool | None = None,
                 norm_layer: LayerFn = nn.BatchNorm2d, act_layer: LayerFn = nn.ReLU,
                 order: str = "norm_act") -> None:
        if order not in ("norm_act", "act_norm"):
            raise ValueError(f"ConvNormAct: order must be 'norm_act' or 'act_norm', got {order!r}")
        padding = _same_padding(kernel_size, dilation) if padding is None else padding
        bias = norm_layer is None if bias is None else bias
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding,
                              dilation=dilation, groups=groups, bias=bias)
        }
        norm = norm_layer(out_chans) if norm_layer is not None else None
        act = act_layer() if act_layer is not None else None
        for name, layer in ((("bn", norm), ("act", act)) if order == "norm_act" else (("act", act), ("bn", norm))):
            if layer is not None:
                layers[name] = layer
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride


class DepthwiseSeparableConv(nn.Module):
    """MobileNetV1 block: depthwise kxk (stride) -> norm -> act -> pointwise 1x1 -> norm -> act.

    ``mid_norm=False, mid_act=False`` drops norm and activation between depthwise and pointwise;
    with ``pw_bias=True, norm_layer=None`` that is exactly Keras' ``SeparableConv2D`` (no bias on the
    depthwise kernel, bias on the pointwise), followed by ``act_layer``.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1, *,
                 norm_layer: LayerFn = nn.BatchNorm2d, act_layer: LayerFn = nn.ReLU,
                 mid_norm: bool = True, mid_act: bool = True, pw_bias: bool | None = None,
                 padding: int | None = None) -> None:
        super().__init__()
        self.conv_dw = ConvNormAct(in_chans, in_chans, kernel_size, stride, padding=padding, groups=in_chans,
                                   bias=False if not mid_norm else None,
                                   norm_layer=norm_layer if mid_norm else None,
                                   act_layer=act_layer if mid_act else None)
        self.conv_pw = ConvNormAct(in_chans, out_chans, 1, bias=pw_bias, norm_layer=norm_layer, act_layer=act_layer)
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_dw(x)
        x = self.conv_pw(x)
        return x


class _ChannelsLastMean(torch.autograd.Function):
    """``op(x)``, a mean over the spatial dims, whose gradient is laid out channels_last like ``x``.

    autograd's own gradient of a spatial mean is the output gradient expanded and divided, which comes out in NCHW
    order; the next backward op (ReLU, BatchNorm, the residual add) then mixes NCHW with channels_last, and
    PyTorch's CPU kernels run such mixed layouts 15 to 30 times slower than matching ones (a ReLU backward of
    128x133x2x2: 441 us against 10-30 us). The values are the same as autograd's, bit for bit."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.shape = x.shape
        return op(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n = ctx.shape[-1] * ctx.shape[-2]          # autograd's expand-then-divide, divided first: same values
        out = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=torch.channels_last)
        return out.copy_((grad / n).expand(ctx.shape)), None


def _mean_hw(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3), keepdim=True)


def spatial_mean(x: torch.Tensor, op: Callable[[torch.Tensor], torch.Tensor] = _mean_hw) -> torch.Tensor:
    """``op(x)`` (default ``x.mean((2, 3), keepdim=True)``); while training a channels_last ``x``, its gradient
    stays channels_last (:class:`_ChannelsLastMean`). Anything else (NCHW, no grad, tracing, export, FX proxies)
    runs ``op`` as it is."""
    training = isinstance(x, torch.Tensor) and x.ndim == 4 and x.requires_grad and torch.is_grad_enabled()
    channels_last = training and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if (channels_last and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
            and not torch.onnx.is_in_onnx_export()):
        return _ChannelsLastMean.apply(x, op)
    return op(x)


class GlobalAvgPool(nn.AdaptiveAvgPool2d):
    """``nn.AdaptiveAvgPool2d(1)`` (same output, same state, an instance of it) whose gradient keeps a
    channels_last input's memory format while training (:func:`spatial_mean`)."""

    def __init__(self) -> None:
        super().__init__(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spatial_mean(x, super().forward)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): global pool -> 1x1 reduce -> act -> 1x1 expand -> gate."""

    def __init__(self, chans: int, rd_chans: int, *, act_layer: LayerFn = nn.ReLU,
                 gate_layer: Callable[..., nn.Module] = nn.Hardsigmoid) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chans, rd_chans, 1)
        self.act = act_layer() if act_layer is not None else nn.Identity()
        self.conv_expand = nn.Conv2d(rd_chans, chans, 1)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = spatial_mean(x)
        s = self.act(self.conv_reduce(s))
        return x * self.gate(self.conv_expand(s))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion -> depthwise kxk (stride) -> [SE] -> linear 1x1 projection,
    with a residual connection when stride is 1 and channels match (Sandler et al. 2018, Table 1).

    The hidden width is ``round(in_chans * expansion)`` as in torchvision; expansion 1 skips the 1x1.
    """

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1, *,
                 expansion: float = 6.0, se_ratio: float = 0.0, norm_layer: LayerFn = nn.BatchNorm2d,
                 act_layer: LayerFn = nn.ReLU6) -> None:
        super().__init__()
        hidden = int(round(in_chans * expansion))
        self.use_res = stride == 1 and in_chans == out_chans
        self.conv_pw = (ConvNormAct(in_chans, hidden, 1, norm_layer=norm_layer, act_layer=act_layer)
                        if hidden != in_chans else nn.Identity())
        self.conv_dw = ConvNormAct(hidden, hidden, kernel_size, stride, groups=hidden,
                                   norm_layer=norm_layer, act_layer=act_layer)
        self.se = (SqueezeExcite(hidden, make_divisible(hidden * se_ratio, 8), act_layer=act_layer)
                   if se_ratio > 0 else nn.Identity())
        self.conv_pwl = ConvNormAct(hidden, out_chans, 1, norm_layer=norm_layer, act_layer=None)
        self.in_chans, self.out_chans, self.stride = in_chans, out_chans, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pw(x)
        x = self.conv_dw(x)
        x = self.se(x)
        x = self.conv_pwl(x)
        if self.use_res:
            x = x + shortcut
        return x


class MLPBlock(nn.Sequential):
    """Linear -> norm -> activation -> dropout (``order="act_norm"``: activation before the norm)."""

    def __init__(self, in_features: int, out_features: int, *, norm_layer: LayerFn = nn.BatchNorm1d,
                 act_layer: LayerFn = nn.ReLU, dropout: float = 0.0, bias: bool = True,
                 order: str = "norm_act") -> None:
        if order not in ("norm_act", "act_norm"):
            raise ValueError(f"MLPBlock: order must be 'norm_act' or 'act_norm', got {order!r}")
        super().__init__()
        self.add_module("fc", nn.Linear(in_features, out_features, bias=bias))
        norm = norm_layer(out_features) if norm_layer is not None else None
        act = act_layer() if act_layer is not None else None
        for name, layer in ((("bn", norm), ("act", act)) if order == "norm_act" else (("act", act), ("bn", norm))):
            if layer is not None:
                self.add_module(name, layer)
        if dropout > 0:
            self.add_module("drop", nn.Dropout(dropout))
