"""Deep Compression's MNIST networks (Han et al. 2016, Table 1): exact parameter counts, layer shapes, MACs."""

import pytest
import torch
from torch import nn

from compress import models
from compress.profile import profile

MNIST = dict(num_classes=10, in_chans=1, input_size=28)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _shapes(model, kind):
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, kind)]


# Table 1: LeNet-300-100 "267K" weights, 1070 KB; LeNet-5 "431K" weights, 1720 KB (fp32, 1 KB = 1000 bytes).
@pytest.mark.parametrize("name, params, kbytes", [("lenet_300_100", 266_610, 1070), ("lenet_5", 431_080, 1720)])
def test_table1_parameter_counts(name, params, kbytes):
    model = models.create(name, **MNIST)
    assert _params(model) == params
    assert round(4 * params / 1000, -1) == kbytes
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout)) for m in model.modules())


def test_lenet_300_100_layers():
    model = models.create("lenet_300_100", **MNIST)
    assert _shapes(model, nn.Linear) == [(300, 784), (100, 300), (10, 100)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 2     # after ip1 and ip2, not after ip3
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_lenet_5_layers_follow_caffe():
    model = models.create("lenet_5", **MNIST)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(20, 1, 5, 5), (50, 20, 5, 5)]
    assert all(c.padding == (0, 0) and c.stride == (1, 1) and c.bias is not None for c in convs)
    assert _shapes(model, nn.Linear) == [(500, 800), (10, 500)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    # lenet_train_test.prototxt has one ReLU (relu1, after ip1); none after the convolutions.
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 1
    assert model.features(torch.zeros(1, 1, 28, 28)).shape == (1, 50, 4, 4)     # 28 -5-> 24 -> 12 -5-> 8 -> 4


def test_macs_by_hand():
    # One multiply-add per weight use; pooling, ReLU and bias adds are not MACs.
    mlp = 784 * 300 + 300 * 100 + 100 * 10                                  # 266,200
    lenet5 = (24 * 24 * 20 * 1 * 25          # conv1: 24x24 outputs, 20 filters of 1x5x5
              + 8 * 8 * 50 * 20 * 25         # conv2: 8x8 outputs (12 - 5 + 1), 50 filters of 20x5x5
              + 800 * 500 + 500 * 10)        # ip1 (50 x 4 x 4 = 800 inputs), ip2
    for name, macs in (("lenet_300_100", mlp), ("lenet_5", lenet5)):
        p = profile(models.create(name, **MNIST), (1, 28, 28), serialize=False)
        assert p.unsupported == {} and p.macs == macs
    assert (mlp, lenet5) == (266_200, 2_293_000)


@pytest.mark.parametrize("width, linear", [
    (0.5, [(150, 784), (50, 150), (10, 50)]),
    (2.0, [(600, 784), (200, 600), (10, 200)]),
])
def test_lenet_300_100_width(width, linear):
    model = models.create("lenet_300_100", width_mult=width, **MNIST)
    assert _shapes(model, nn.Linear) == linear


@pytest.mark.parametrize("width, convs, linear", [
    (0.5, [(10, 1, 5, 5), (25, 10, 5, 5)], [(250, 400), (10, 250)]),
    (0.25, [(5, 1, 5, 5), (13, 5, 5, 5)], [(125, 208), (10, 125)]),     # 12.5 rounds to 13 (divisor 1)
])
def test_lenet_5_width(width, convs, linear):
    model = models.create("lenet_5", width_mult=width, **MNIST)
    assert _shapes(model, nn.Conv2d) == convs and _shapes(model, nn.Linear) == linear
    p = profile(model, (1, 28, 28), serialize=False)
    c1, c2, h = convs[0][0], convs[1][0], linear[0][0]
    assert p.macs == 24 * 24 * c1 * 25 + 8 * 8 * c2 * c1 * 25 + 16 * c2 * h + h * 10


def test_lenet_5_too_small_input_raises():
    with pytest.raises(ValueError, match="too small"):
        models.create("lenet_5", input_size=8)      # 8 -5-> 4 -> 2 -5-> nothing


@pytest.mark.parametrize("name", ["lenet_300_100", "lenet_5"])
def test_stacked_members_match_their_own(name):
    """Fused training (compress.train.stack) takes both: each member's outputs and gradients are its own."""
    from compress.train.stack import member_losses, split_outputs, stack_inputs, stack_models, unstack_state

    k, members = 3, []
    for seed in range(k):
        torch.manual_seed(seed)
        members.append(models.create(name, **MNIST).train())
    stacked = stack_models(members).train()
    xs = [torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(s)) for s in range(k)]
    ys = torch.randint(0, 10, (k, 4), generator=torch.Generator().manual_seed(9))
    out = stacked(stack_inputs(xs))
    member_losses(out, ys).sum().backward()
    grads = unstack_state({n: p.grad for n, p in stacked.named_parameters()}, k)
    for m, (model, alone) in enumerate(zip(members, split_outputs(out, k))):
        mine = model(xs[m])
        assert torch.allclose(mine, alone, atol=1e-5, rtol=1e-4)
        nn.functional.cross_entropy(mine, ys[m]).backward()
        for n, p in model.named_parameters():
            assert torch.allclose(p.grad, grads[m][n], atol=1e-6, rtol=1e-3), n
