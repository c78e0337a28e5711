import math

import pytest
import torch
from torch import nn

from compress.blocks import (ConvNormAct, DepthwiseSeparableConv, GlobalAvgPool, InvertedResidual, MLPBlock,
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


def _pool_model(pool: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(ConvNormAct(3, 8, 3), pool, nn.Flatten(1), nn.Linear(8, 4))


@pytest.mark.parametrize("channels_last", [True, False])
def test_global_avg_pool_is_adaptive_avg_pool_bit_for_bit(channels_last):
    """Same outputs and gradients as nn.AdaptiveAvgPool2d(1), exactly; with a channels_last input the gradient
    reaching the layer below is channels_last too (autograd's own is NCHW, which makes the ReLU backward mix
    layouts and run many times slower)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(16, 3, 6, 6).contiguous(memory_format=fmt)
    ours, ref = _pool_model(GlobalAvgPool()).to(memory_format=fmt), _pool_model(nn.AdaptiveAvgPool2d(1)).to(
        memory_format=fmt)
    seen = []
    ours[0].act.register_full_backward_hook(lambda m, gin, gout: seen.append(gout[0]))
    for model in (ours, ref):
        model(x).square().sum().backward()
    assert torch.equal(ours(x), ref(x))
    for a, b in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(a.grad, b.grad)
    assert seen[0].is_contiguous(memory_format=fmt)
    assert isinstance(GlobalAvgPool(), nn.AdaptiveAvgPool2d) and GlobalAvgPool().output_size == 1


def test_squeeze_excite_gradient_is_autograds_bit_for_bit():
    torch.manual_seed(0)
    se = SqueezeExcite(8, 4).to(memory_format=torch.channels_last)
    x = torch.randn(4, 8, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    se(x).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    s = x.mean((2, 3), keepdim=True)
    (x * se.gate(se.conv_expand(se.act(se.conv_reduce(s))))).sum().backward()
    assert torch.equal(grad, x.grad)
    assert grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_global_avg_pool_traces_and_exports_as_the_plain_op():
    model = _pool_model(GlobalAvgPool()).eval()
    x = torch.randn(2, 3, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    traced = torch.jit.trace(model, x)
    assert torch.equal(traced(x), model(x))
    assert "_ChannelsLastMean" not in str(traced.graph)
    gm = torch.fx.symbolic_trace(model)
    assert torch.equal(gm(x), model(x))
