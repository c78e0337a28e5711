"""Architectures as data, one builder, and a registry.

An architecture is a small frozen dataclass (:class:`ConvNetSpec` of :class:`Stage` rows, or
:class:`MLPSpec`). :func:`build` reads it and applies the width multiplier (every channel count through
:func:`~compress.blocks.make_divisible`) and the depth multiplier (repeats rounded up), and adapts the
stride schedule to the input size so small inputs never shrink to nothing.

``create(name, **kw)`` builds a registered model; ``list_models()`` lists the names. Every model carries
``model.build_args``, a JSON-serializable dict such that ``create(**model.build_args)`` rebuilds it.

Families: ``mobilenet_v1`` (Howard et al. 2017, Table 1), ``mobilenet_v2`` (Sandler et al. 2018,
Table 2, as torchvision builds it), ``cnn`` (plain VGG-style stacks), ``mlp``; and the seed reports'
models rebuilt layer for layer: ``fer_hw3_cnn``, ``fer_hw3_dnn``, ``fer_hw8_keras``, ``fer_hw8_torch``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from compress.blocks import (ConvNormAct, DepthwiseSeparableConv, InvertedResidual, MLPBlock, get_act,
                             make_divisible)

__all__ = ["Stage", "ConvNetSpec", "MLPSpec", "ConvNet", "MLP", "build", "create", "list_models",
           "register_model", "describe"]

BLOCKS = ("conv", "dws", "sep", "ir")


@dataclass(frozen=True)
class Stage:
    """One stage: ``repeats`` blocks of one kind; only the first block has ``stride``.

    block: ``"conv"`` (ConvNormAct), ``"dws"`` (MobileNetV1 depthwise-separable), ``"sep"`` (Keras
    SeparableConv2D: no norm/act between depthwise and pointwise, pointwise bias), ``"ir"`` (MobileNetV2
    inverted residual). ``pool``: 2x2 ``"max"``/``"avg"`` pooling after the stage. ``padding``:
    ``"same"`` or ``"valid"`` (Keras). ``order``: ``"norm_act"`` or ``"act_norm"``.
    """

    block: str
    out_chans: int
    repeats: int = 1
    stride: int = 1
    kernel: int = 3
    expansion: float = 1.0      # ir only: hidden = round(in_chans * expansion)
    se_ratio: float = 0.0       # ir only: squeeze-excite width as a fraction of hidden
    pool: str | None = None
    norm: bool = True
    act: bool = True
    bias: bool | None = None    # None: bias only without norm
    padding: str = "same"
    order: str = "norm_act"
    dropout: float = 0.0        # after the stage

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"Stage.block must be one of {BLOCKS}, got {self.block!r}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"Stage.padding must be 'same' or 'valid', got {self.padding!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"Stage.stride must be 1 or 2, got {self.stride!r}")


@dataclass(frozen=True)
class ConvNetSpec:
    """A convolutional network: stem (never depth-scaled), stages, optional 1x1 head conv, pooling,
    optional hidden Linear layers, classifier.

    head_fixed: the head width is not scaled below width 1 (MobileNetV2 keeps 1280 channels).
    pool: ``"avg"`` (global average) or ``"flatten"``. divisor: channel rounding (1 = exact counts).
    """

    stem: Stage | None
    stages: tuple[Stage, ...]
    head_chans: int | None = None
    head_fixed: bool = False
    pool: str = "avg"
    hidden: tuple[int, ...] = ()
    hidden_norm: bool = True
    hidden_order: str = "norm_act"
    hidden_dropout: float = 0.0
    hidden_act: str | None = None   # None: same as act
    act: str = "relu"
    dropout: float = 0.0            # before the classifier
    divisor: int = 8


@dataclass(frozen=True)
class MLPSpec:
    """Flatten -> hidden MLPBlocks -> classifier."""

    hidden: tuple[int, ...] = (512, 256, 128)
    norm: bool = True
    act: str = "relu"
    order: str = "norm_act"
    hidden_dropout: float = 0.0
    dropout: float = 0.0
    divisor: int = 8


class ConvNet(nn.Module):
    """``features`` (stem, stages, head) -> global pool or flatten -> ``classifier``."""

    def __init__(self, features: nn.Sequential, pool: str, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.Identity()
        self.flatten = nn.Flatten(1)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.pool(x)
        x = self.flatten(x)
        return self.classifier(x)


class MLP(nn.Module):
    """Flatten -> ``blocks`` -> ``classifier``."""

    def __init__(self, blocks: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.flatten = nn.Flatten(1)
        self.blocks = blocks
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.flatten(x)))


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
          min_feature_size: int = 2, channel_divisor: int | None = None, stride_policy: str = "late") -> nn.Module:
    """Build a model from an architecture spec.

    Channels become ``make_divisible(c * width_mult, spec.divisor)``; repeats become
    ``ceil(repeats * depth_mult)``. A stride-2 block or a 2x2 pool whose output would be smaller than
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
    """torchvision's MobileNet initialization (mobilenetv2.py), applied to every conv, norm and linear layer."""
    for m in model.modules():
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
    rows = ([(spec.stem, 1)] if spec.stem is not None else []) + [
        (s, max(1, math.ceil(s.repeats * depth_mult))) for s in spec.stages]
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
    n = max(1, math.ceil(len(spec.hidden) * depth_mult)) if spec.hidden else 0
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


# -------------------------------------------------------------------------------------------- registry

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
           **family_options: Any) -> nn.Module:
    """Build the registered model ``name``; defaults suit FER2013 (1x48x48, 7 classes).

    ``create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224)`` is the paper's ImageNet
    network. ``family_options`` go to the family (e.g. ``act="relu6"``, ``channels=(32, 64)`` for
    ``cnn``, ``hidden=(256, 128)`` for ``mlp``). ``dropout=None`` uses the family's default.

    Raises ValueError (unknown name or option, impossible setting) or TypeError (wrong type).
    """
    spec = get_spec(name, **family_options)
    model = build(spec, width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                  in_chans=in_chans, input_size=input_size, dropout=dropout, min_feature_size=min_feature_size,
                  channel_divisor=channel_divisor, stride_policy=stride_policy)
    extra = {"channel_divisor": channel_divisor} if channel_divisor is not None else {}
    if stride_policy != "late":
        extra["stride_policy"] = stride_policy
    model.build_args = _jsonable(dict(name=name, width_mult=float(width_mult), depth_mult=float(depth_mult),
                                      num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                                      dropout=dropout, min_feature_size=min_feature_size, **extra,
                                      **family_options))
    return model


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"model option {obj!r} is not JSON-serializable (use numbers, strings, lists)")


def _tuple(value: Any, name: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of ints, got {value!r}")
    out = tuple(value)
    if not out or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in out):
        raise ValueError(f"{name} must be a non-empty list of positive ints, got {value!r}")
    return out


# ------------------------------------------------------------------------------------------- families

@register_model("mobilenet_v1", "MobileNetV1 (Howard et al. 2017, Table 1): stem + 13 depthwise-separable blocks")
def mobilenet_v1(*, act: str = "relu") -> ConvNetSpec:
    dws = lambda c, s=1, n=1: Stage("dws", c, repeats=n, stride=s)  # noqa: E731
    # Table 1: conv 32/s2, then dw+pw pairs; the five 512-channel blocks are one stage (depth-scaled).
    return ConvNetSpec(
        stem=Stage("conv", 32, stride=2),
        stages=(dws(64), dws(128, 2), dws(128), dws(256, 2), dws(256), dws(512, 2), dws(512, 1, 5),
                dws(1024, 2), dws(1024)),
        act=act,
    )


@register_model("mobilenet_v2", "MobileNetV2 (Sandler et al. 2018, Table 2), built as torchvision does")
def mobilenet_v2(*, act: str = "relu6", last_channel: int = 1280, se_ratio: float = 0.0) -> ConvNetSpec:
    # Table 2 rows: expansion t, channels c, repeats n, stride s.
    rows = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]
    return ConvNetSpec(
        stem=Stage("conv", 32, stride=2),
        stages=tuple(Stage("ir", c, repeats=n, stride=s, expansion=t, se_ratio=se_ratio) for t, c, n, s in rows),
        head_chans=last_channel, head_fixed=True, act=act, dropout=0.2,
    )


@register_model("cnn", "plain VGG-style CNN: stages of 3x3 conv-BN-act pairs with 2x2 max-pooling")
def cnn(*, channels=(32, 64, 128, 256), convs_per_stage: int = 2, hidden=(), head: str = "avg",
        act: str = "relu", norm: bool = True) -> ConvNetSpec:
    channels = _tuple(channels, "channels")
    hidden = tuple(hidden) and _tuple(hidden, "hidden")
    if head not in ("avg", "flatten"):
        raise ValueError(f"cnn: head must be 'avg' or 'flatten', got {head!r}")
    if isinstance(convs_per_stage, bool) or not isinstance(convs_per_stage, int) or convs_per_stage < 1:
        raise ValueError(f"cnn: convs_per_stage must be a positive int, got {convs_per_stage!r}")
    return ConvNetSpec(
        stem=None,
        stages=tuple(Stage("conv", c, repeats=convs_per_stage, pool="max", norm=norm) for c in channels),
        pool=head, hidden=hidden, act=act,
    )


@register_model("mlp", "multilayer perceptron on flattened pixels (Linear-BN-act blocks)")
def mlp(*, hidden=(512, 256, 128), act: str = "relu", norm: bool = True) -> MLPSpec:
    return MLPSpec(hidden=_tuple(hidden, "hidden"), act=act, norm=norm)


# The seed reports' models, rebuilt layer for layer (shared/seeds/). divisor=1 keeps their odd widths.

@register_model("fer_hw3_cnn", "seed 000's HW3 Keras CNN: 6 valid 3x3 convs (ELU, then BN), dense 512x2; 5,900,679 Keras params")
def fer_hw3_cnn() -> ConvNetSpec:
    conv = lambda c, pool=None, p=0.0: Stage("conv", c, bias=True, padding="valid", order="act_norm",  # noqa: E731
                                             pool=pool, dropout=p)
    return ConvNetSpec(
        stem=None,
        stages=(conv(128, p=0.2), conv(128, "max", 0.2), conv(256, p=0.3), conv(256, "max", 0.3),
                conv(512, p=0.4), conv(512, "max", 0.4)),
        pool="flatten", hidden=(512, 512), hidden_order="act_norm", act="elu", divisor=1,
    )


@register_model("fer_hw3_dnn", "seed 004's HW3 DNN: dense 480-240-128-100-70-48, no norm; 1,276,409 params")
def fer_hw3_dnn() -> MLPSpec:
    return MLPSpec(hidden=(480, 240, 128, 100, 70, 48), norm=False, act="relu", divisor=1)


@register_model("fer_hw8_keras", "seed 000's HW8 Keras model: conv-BN-ELU + SeparableConv2D pairs; 104,572 Keras params")
def fer_hw8_keras() -> ConvNetSpec:
    conv = lambda c: Stage("conv", c, bias=True)  # noqa: E731  Keras Conv2D keeps its bias before BN
    sep = lambda c, pool="max", act=True: Stage("sep", c, norm=False, pool=pool, act=act)  # noqa: E731
    return ConvNetSpec(
        stem=None,
        stages=(conv(15), sep(15), conv(50), sep(70), conv(100), sep(120), sep(120, pool=None, act=False)),
        act="elu", divisor=1,
    )


@register_model("fer_hw8_torch", "seed 001's HW8 PyTorch MobileNet: conv + 4 depthwise-separable s2 blocks; 109,761 state_dict values")
def fer_hw8_torch() -> ConvNetSpec:
    return ConvNetSpec(
        stem=Stage("conv", 64),
        stages=(Stage("dws", 128, stride=2), Stage("dws", 128, stride=2), Stage("dws", 128, stride=2),
                Stage("dws", 256, stride=2)),
        hidden=(100,), hidden_order="act_norm", hidden_dropout=0.5, hidden_act="relu",
        act="leaky_relu:0.05", divisor=1,
    )


def replace_spec(spec, **changes):
    """``dataclasses.replace`` for specs (kept here so callers need not import dataclasses)."""
    return dataclasses.replace(spec, **changes)
