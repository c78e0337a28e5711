"""One builder for every architecture spec: width and depth multipliers, an input-size-aware stride schedule.

:func:`build` reads a :class:`~compress.models.spec.ConvNetSpec` or :class:`~compress.models.spec.MLPSpec`,
applies the width multiplier (every channel count through :func:`~compress.blocks.make_divisible`) and the depth
multiplier (:func:`stage_repeats`: repeats rounded up above 1; below 1 a share of the blocks, repeated blocks
removed first, then whole stages from the end), and adapts the stride schedule to the input size so small inputs
never shrink to nothing.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from compress.blocks import (ConvNormAct, DepthwiseSeparableConv, GlobalAvgPool, InvertedResidual, MLPBlock,
                             get_act, make_divisible)
from compress.models.card import CardedModel
from compress.models.spec import ConvNetSpec, MLPSpec, Stage

__all__ = ["ConvNet", "MLP", "build", "init_weights", "stage_repeats", "block_count"]


class ConvNet(CardedModel):
    """``features`` (stem, stages, head) -> global pool or flatten -> ``classifier``."""

    def __init__(self, features: nn.Sequential, pool: str, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.pool = GlobalAvgPool() if pool == "avg" else nn.Identity()
        self.flatten = nn.Flatten(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.pool(x)
        x = self.flatten(x)
        return self.classifier(x)


class MLP(CardedModel):
    """Flatten -> ``blocks`` -> ``classifier``."""

    def __init__(self, blocks: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.blocks = blocks
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.flatten(x)))


# --------------------------------------------------------------------------------------------- depth

def block_count(repeats: int, depth_mult: float) -> int:
    """Blocks kept of ``repeats`` at ``depth_mult`` < 1: ``max(1, ceil(repeats * depth_mult))`` (a float
    hair above an integer, as 13 * (7/13), does not round up)."""
    return max(1, math.ceil(repeats * depth_mult - 1e-9))


def stage_repeats(repeats: tuple[int, ...] | list[int], depth_mult: float) -> list[int]:
    """Blocks per stage at ``depth_mult``; a 0 drops the stage (its channels and its stride with it).

    ``depth_mult >= 1``: every stage's repeats rounded up, ``ceil(r * depth_mult)`` (EfficientNet's
    ``round_repeats``). ``depth_mult < 1``: ``block_count(sum(repeats), depth_mult)`` blocks in all, taken off
    one at a time: first repeated blocks (from the stage with the most, the later stage on a tie), then, once
    every stage has one, whole stages from the end. So a small depth multiplier gives a shallow network whose
    narrowest and widest layers are a few stages apart (stem 32 -> 128 channels for MobileNetV1 at 3 blocks),
    not every stage squeezed to one block with the full 1:32 channel ratio kept.
    """
    counts = [int(r) for r in repeats]
    if depth_mult >= 1:
        return [math.ceil(r * depth_mult) for r in counts]
    target = block_count(sum(counts), depth_mult)
    while sum(counts) > target:
        most = max(counts)
        if most > 1:
            counts[len(counts) - 1 - counts[::-1].index(most)] -= 1
        else:
            counts[len(counts) - 1 - counts[::-1].index(1)] = 0
    return counts


# --------------------------------------------------------------------------------------------- builder

def _check_common(width_mult: float, depth_mult: float, num_classes: int, in_chans: int, input_size: int,
                  dropout: float | None) -> None:
    for name, value in (("width_mult", width_mult), ("depth_mult", depth_mult)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    for name, value, low in (("num_classes", num_classes, 2), ("in_chans", in_chans, 1),
                             ("input_size", input_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if dropout is not None and not (0.0 <= dropout < 1.0):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


def _norm2d(use: bool):
    return nn.BatchNorm2d if use else None


def _make_block(stage: Stage, in_chans: int, out_chans: int, stride: int, act) -> nn.Module:
    act_layer = act if stage.act else None
    padding = 0 if stage.padding == "valid" else None
    if stage.block == "conv":
        return ConvNormAct(in_chans, out_chans, stage.kernel, stride, padding=padding, bias=stage.bias,
                           norm_layer=_norm2d(stage.norm), act_layer=act_layer, order=stage.order)
    if stage.block == "dws":
        return DepthwiseSeparableConv(in_chans, out_chans, stage.kernel, stride, padding=padding,
                                      norm_layer=_norm2d(stage.norm), act_layer=act_layer, pw_bias=stage.bias)
    if stage.block == "sep":
        return DepthwiseSeparableConv(in_chans, out_chans, stage.kernel, stride, padding=padding,
                                      norm_layer=_norm2d(stage.norm), act_layer=act_layer,
                                      mid_norm=False, mid_act=False, pw_bias=True if stage.bias is None else stage.bias)
    return InvertedResidual(in_chans, out_chans, stage.kernel, stride, expansion=stage.expansion,
                            se_ratio=stage.se_ratio, norm_layer=_norm2d(stage.norm), act_layer=act_layer)


def _conv_out(size: int, kernel: int, stride: int, padding: str) -> int:
    if padding == "same":
        return -(-size // stride)   # ceil(size / stride) with "same" padding
    return (size - kernel) // stride + 1


def build(spec: ConvNetSpec | MLPSpec, *, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 7,
          in_chans: int = 1, input_size: int = 48, dropout: float | None = None,
          min_feature_size: int = 2, channel_divisor: int | None = None, stride_policy: str = "late") -> CardedModel:
    """Build a model from an architecture spec.

    Channels become ``make_divisible(c * width_mult, spec.divisor)``; blocks per stage are
    :func:`stage_repeats` (below depth 1 whole stages go, from the end; an MLP's hidden layers likewise). A
    stride-2 block or a 2x2 pool whose output would be smaller than
    ``min_feature_size`` pixels keeps the resolution instead (the stride schedule adapts to ``input_size``;
    ImageNet sizes are untouched). ``channel_divisor`` overrides the spec's rounding (1 = any channel count,
    which lets a budget search match parameter counts closely at small widths). Weights are initialized as
    torchvision's MobileNets do: conv ``kaiming_normal_(fan_out)``, BatchNorm 1/0, linear N(0, 0.01), biases 0.
    Raises ValueError when a "valid" convolution leaves nothing.
    """
    _check_common(width_mult, depth_mult, num_classes, in_chans, input_size, dropout)
    if channel_divisor is not None:
        if isinstance(channel_divisor, bool) or not isinstance(channel_divisor, int) or channel_divisor < 1:
            raise ValueError(f"channel_divisor must be a positive int, got {channel_divisor!r}")
        spec = dataclasses.replace(spec, divisor=channel_divisor)
    model = _build(spec, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes, in_chans=in_chans,
                   input_size=input_size, dropout=dropout, min_feature_size=min_feature_size,
                   stride_policy=stride_policy)
    init_weights(model)
    return model


def init_weights(model: nn.Module) -> None:
    """torchvision's MobileNet initialization (mobilenetv2.py), applied to every conv, norm and linear layer.
    A model built on the meta device (shapes only) is left alone: its random fill would run Python reference
    kernels, and the first one imports ``torch._dynamo`` (about 2.5 s)."""
    for m in model.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _reductions(rows) -> list[tuple[str, int]]:
    out = []
    for index, (stage, _) in enumerate(rows):
        if stage.stride == 2:
            out.append(("stride", index))
        if stage.pool is not None:
            out.append(("pool", index))
    return out


def _first_infeasible(rows, input_size: int, min_size: int, disabled: set) -> tuple[str, int] | None:
    """Simulate feature-map sizes; the first enabled reduction that would go below ``min_size``, or None."""
    size = input_size
    for index, (stage, repeats) in enumerate(rows):
        for r in range(repeats):
            stride = stage.stride if r == 0 and ("stride", index) not in disabled else 1
            new = _conv_out(size, stage.kernel, stride, stage.padding)
            if new < 1:
                raise ValueError(f"input_size={input_size} is too small: the 'valid' convolutions of stage "
                                 f"{index} leave no pixels; use a larger input")
            if stride == 2 and new < min_size:
                return ("stride", index)
            size = new
        if stage.pool is not None and ("pool", index) not in disabled:
            if size // 2 < min_size:
                return ("pool", index)
            size //= 2
    return None


def _plan_reductions(rows, input_size: int, min_size: int, policy: str) -> set:
    """Which stride-2 blocks and pools to turn off so no feature map is smaller than ``min_size``.

    ``"late"`` turns off the reductions that would go too small (the last ones); ``"early"`` turns off the
    earliest ones instead (as CIFAR adaptations do with the stem), keeping more resolution in the deep,
    parameter-heavy layers at the cost of more MACs.
    """
    if policy not in ("late", "early"):
        raise ValueError(f"stride_policy must be 'late' or 'early', got {policy!r}")
    disabled: set = set()
    order = _reductions(rows)
    while (bad := _first_infeasible(rows, input_size, min_size, disabled)) is not None:
        disabled.add(bad if policy == "late" else next(r for r in order if r not in disabled))
    return disabled


def _build(spec, *, width_mult, depth_mult, num_classes, in_chans, input_size, dropout, min_feature_size,
           stride_policy):
    if isinstance(spec, MLPSpec):
        return _build_mlp(spec, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                          in_features=in_chans * input_size * input_size, dropout=dropout)
    if not isinstance(spec, ConvNetSpec):
        raise TypeError(f"build: spec must be a ConvNetSpec or MLPSpec, got {type(spec).__name__}")
    if input_size < min_feature_size:
        raise ValueError(f"input_size={input_size} is too small for a conv net: need at least "
                         f"min_feature_size={min_feature_size} pixels")

    def chans(c: int) -> int:
        return make_divisible(c * width_mult, spec.divisor)

    act = get_act(spec.act)
    layers: list[nn.Module] = []
    kept = stage_repeats([s.repeats for s in spec.stages], depth_mult)
    rows = ([(spec.stem, 1)] if spec.stem is not None else []) + [
        (s, n) for s, n in zip(spec.stages, kept) if n > 0]
    disabled = _plan_reductions(rows, input_size, min_feature_size, stride_policy)
    size, c_in = input_size, in_chans
    for index, (stage, repeats) in enumerate(rows):
        blocks: list[nn.Module] = []
        c_out = chans(stage.out_chans)
        for r in range(repeats):
            stride = stage.stride if r == 0 and ("stride", index) not in disabled else 1
            size = _conv_out(size, stage.kernel, stride, stage.padding)
            blocks.append(_make_block(stage, c_in, c_out, stride, act))
            c_in = c_out
        if stage.pool is not None and ("pool", index) not in disabled:
            blocks.append(nn.MaxPool2d(2) if stage.pool == "max" else nn.AvgPool2d(2))
            size //= 2
        if stage.dropout > 0:
            blocks.append(nn.Dropout(stage.dropout))
        layers.append(blocks[0] if len(blocks) == 1 else nn.Sequential(*blocks))
    if spec.head_chans is not None:
        # MobileNetV2 keeps its last conv at 1280 channels for width < 1 (torchvision: max(1.0, width)).
        head = make_divisible(spec.head_chans * (max(1.0, width_mult) if spec.head_fixed else width_mult),
                              spec.divisor)
        layers.append(ConvNormAct(c_in, head, 1, act_layer=act))
        c_in = head
    features = nn.Sequential(*layers)
    flat = c_in if spec.pool == "avg" else c_in * size * size
    hidden_act = get_act(spec.hidden_act) if spec.hidden_act is not None else act
    head_layers: list[nn.Module] = []
    for width in spec.hidden:
        w = chans(width)
        head_layers.append(MLPBlock(flat, w, norm_layer=nn.BatchNorm1d if spec.hidden_norm else None,
                                    act_layer=hidden_act, dropout=spec.hidden_dropout, order=spec.hidden_order))
        flat = w
    p = spec.dropout if dropout is None else dropout
    if p > 0:
        head_layers.append(nn.Dropout(p))
    head_layers.append(nn.Linear(flat, num_classes))
    return ConvNet(features, spec.pool, nn.Sequential(*head_layers))


def _build_mlp(spec: MLPSpec, *, width_mult: float, depth_mult: float, num_classes: int, in_features: int,
               dropout: float | None) -> MLP:
    n = sum(stage_repeats([len(spec.hidden)], depth_mult)) if spec.hidden else 0   # hidden layers, from the end
    widths = list(spec.hidden[:n]) + [spec.hidden[-1]] * max(0, n - len(spec.hidden)) if n else []
    act = get_act(spec.act)
    blocks: list[nn.Module] = []
    flat = in_features
    for width in widths:
        w = make_divisible(width * width_mult, spec.divisor)
        blocks.append(MLPBlock(flat, w, norm_layer=nn.BatchNorm1d if spec.norm else None, act_layer=act,
                               dropout=spec.hidden_dropout, order=spec.order))
        flat = w
    p = spec.dropout if dropout is None else dropout
    classifier = ([nn.Dropout(p)] if p > 0 else []) + [nn.Linear(flat, num_classes)]
    return MLP(nn.Sequential(*blocks), nn.Sequential(*classifier))

