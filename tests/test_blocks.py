import math

import pytest
import torch
from torch import nn

from compress.blocks import (ConvNormAct, DepthwiseSeparableConv, InvertedResidual, MLPBlock,
                             SqueezeExcite, get_act, make_divisible)


@pytest.mark.parametrize("value, divisor, expected", [
    (32, 8, 32), (24, 8, 24), (20, 8, 24), (12, 8, 16), (3, 8, 8), (36, 8, 40), (100, 8, 104),
    (15, 1, 15), (1280 * 0.35, 8, 448),
])
def test_make_divisible_matches_torchvision_rule(value, divisor, expected):
    assert make_divisible(value, divisor) == expected


@pytest.mark.parametrize("value", [v / 10 for v in range(10, 2000, 7)])
def test_make_divisible_never_rounds_down_more_than_ten_percent(value):
    out = make_divisible(value, 8)
    assert out % 8 == 0 and out >= 0.9 * value


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_make_divisible_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="make_divisible"):
        make_divisible(bad)


def test_conv_norm_act_bias_only_without_norm():
    assert ConvNormAct(3, 8).conv.bias is None
    assert ConvNormAct(3, 8, norm_layer=None).conv.bias is not None
    assert ConvNormAct(3, 8, bias=True).conv.bias is not None
    layers = [type(m) for m in ConvNormAct(3, 8, order="act_norm").children()]
    assert layers == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    with pytest.raises(ValueError, match="order"):
        ConvNormAct(3, 8, order="sideways")


def test_depthwise_separable_counts_and_shapes():
    block = DepthwiseSeparableConv(16, 32, stride=2)
    n = sum(p.numel() for p in block.parameters())
    assert n == 16 * 9 + 2 * 16 + 16 * 32 + 2 * 32   # dw, bn, pw, bn
    assert block.conv_dw.conv.groups == 16
    assert block(torch.randn(2, 16, 9, 9)).shape == (2, 32, 5, 5)


def test_keras_separable_conv_is_expressible_exactly():
    # Keras SeparableConv2D(70, 3) on 50 channels: 50*9 depthwise + 50*70 pointwise + 70 bias = 4020.
    block = DepthwiseSeparableConv(50, 70, norm_layer=None, mid_norm=False, mid_act=False, pw_bias=True,
                                   act_layer=nn.ELU)
    assert sum(p.numel() for p in block.parameters()) == 4020
    assert block.conv_dw.conv.bias is None and not any(isinstance(m, nn.ELU) for m in block.conv_dw.modules())


def test_inverted_residual_residual_and_hidden_width():
    block = InvertedResidual(16, 16, expansion=6)
    assert block.use_res and block.conv_dw.conv.in_channels == 96
    x = torch.randn(2, 16, 8, 8)
    assert block(x).shape == x.shape
    assert not InvertedResidual(16, 24, stride=2).use_res
    assert isinstance(InvertedResidual(16, 16, expansion=1).conv_pw, nn.Identity)
    se = InvertedResidual(16, 16, se_ratio=0.25)
    assert isinstance(se.se, SqueezeExcite) and se(x).shape == x.shape


def test_mlp_block():
    block = MLPBlock(10, 4, dropout=0.5, order="act_norm")
    assert [type(m) for m in block.children()] == [nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Dropout]
    assert block(torch.randn(3, 10)).shape == (3, 4)


def test_get_act():
    assert get_act("relu") is nn.ReLU and get_act(None) is None
    assert math.isclose(get_act("leaky_relu:0.05")().negative_slope, 0.05)
    for bad in ("swishy", "relu:3", "leaky_relu:abc"):
        with pytest.raises(ValueError):
            get_act(bad)
