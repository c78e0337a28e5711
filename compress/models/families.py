"""The registered families and the seed reports' models, rebuilt layer for layer.

Families: ``mobilenet_v1`` (Howard et al. 2017, Table 1), ``mobilenet_v2`` (Sandler et al. 2018, Table 2, as
torchvision builds it), ``cnn`` (plain VGG-style stacks), ``mlp``, ``lenet_300_100`` and ``lenet_5`` (Deep
Compression's MNIST networks: Han et al. 2016, Tables 1, 2 and 3). Seed reports (``shared/seeds/``):
``fer_hw3_cnn``, ``fer_hw3_dnn``, ``fer_hw8_keras``, ``fer_hw8_torch``.
"""

from __future__ import annotations

from typing import Any

from compress.models.registry import register_model
from compress.models.spec import ConvNetSpec, MLPSpec, Stage

__all__ = ["mobilenet_v1", "mobilenet_v2", "cnn", "mlp", "lenet_300_100", "lenet_5", "fer_hw3_cnn", "fer_hw3_dnn",
           "fer_hw8_keras", "fer_hw8_torch"]


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


# Deep Compression (Han et al. 2016), Table 1: LeNet-300-100 (267K weights, 1070 KB) and LeNet-5 (431K weights,
# 1720 KB) on MNIST. divisor=1: the paper's widths (300, 100, 20, 50, 500) are not multiples of 8, and at any
# width_mult every layer is make_divisible(c * width_mult, 1) = round(c * width_mult) units.

@register_model("lenet_300_100", "LeNet-300-100 (Deep Compression, Han et al. 2016, Table 1/2): dense 300-100, ReLU, no norm; 266,610 params at 1x28x28")
def lenet_300_100(*, act: str = "relu") -> MLPSpec:
    # Table 2: ip1 784x300 (235K), ip2 300x100 (30K), ip3 100x10 (1K); no BatchNorm, no dropout.
    return MLPSpec(hidden=(300, 100), norm=False, act=act, divisor=1)


@register_model("lenet_5", "LeNet-5 as Caffe builds it (Deep Compression, Han et al. 2016, Table 1/3): conv 5x5 20, conv 5x5 50, dense 500; 431,080 params at 1x28x28")
def lenet_5(*, act: str = "relu") -> ConvNetSpec:
    # Table 3 / Caffe's examples/mnist/lenet_train_test.prototxt: conv1 5x5x20 -> pool1 max 2x2 -> conv2 5x5x50
    # -> pool2 max 2x2 -> ip1 500 -> relu1 -> ip2. Valid convolutions with biases, no activation after them
    # (Caffe's only ReLU follows ip1), no norm, no dropout.
    conv = lambda c: Stage("conv", c, kernel=5, padding="valid", pool="max", norm=False, act=False)  # noqa: E731
    return ConvNetSpec(stem=None, stages=(conv(20), conv(50)), pool="flatten", hidden=(500,), hidden_norm=False,
                       act=act, divisor=1)


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

