"""compress.prune on grouped convolutions: a ResNeXt block (grouped 3x3 between 1x1s, residual add) and a depthwise
conv with a channel multiplier, pruned at 0.5 and 0.3 against their closed forms; zero channels change nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress.models.widths import apply_widths, layer_widths
from compress.prune import build_graph, prune


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(model: nn.Module, shape) -> torch.Tensor:
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


class ResNeXt(nn.Module):
    """stem -> [1x1 -> grouped 3x3 -> 1x1] + residual -> pool -> Linear (ResNeXt's block, Xie et al. 2017)."""

    def __init__(self, chain: int = 16, mid: int = 32, groups: int = 4, classes: int = 5):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, chain, 3, padding=1, bias=False), nn.BatchNorm2d(chain)
        self.c1, self.bn1 = nn.Conv2d(chain, mid, 1, bias=False), nn.BatchNorm2d(mid)
        self.c2, self.bn2 = nn.Conv2d(mid, mid, 3, padding=1, groups=groups, bias=False), nn.BatchNorm2d(mid)
        self.c3, self.bn3 = nn.Conv2d(mid, chain, 1, bias=False), nn.BatchNorm2d(chain)
        self.fc = nn.Linear(chain, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        y = F.relu(self.bn1(self.c1(x)))
        y = F.relu(self.bn2(self.c2(y)))
        x = F.relu(x + self.bn3(self.c3(y)))
        return self.fc(x.mean((2, 3)))


class Multiplier(nn.Module):
    """A depthwise conv with two filters per channel (out = 2 * in), then a pointwise conv."""

    def __init__(self, c: int = 8, m: int = 2, out: int = 12, classes: int = 5):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.dw, self.bn1 = nn.Conv2d(c, m * c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(m * c)
        self.pw, self.bn2 = nn.Conv2d(m * c, out, 1), nn.BatchNorm2d(out)
        self.fc = nn.Linear(out, classes)

    def forward(self, x):
        x = F.relu(self.bn0(self.stem(x)))
        x = F.relu(self.bn1(self.dw(x)))
        x = F.relu(self.bn2(self.pw(x)))
        return self.fc(x.mean((2, 3)))


SHAPE = (3, 8, 8)


def test_grouped_conv_couples_positions_across_groups():
    graph = build_graph(ResNeXt(), SHAPE)
    assert graph.unknown == {}
    # c1's 32 outputs feed 4 groups of 8: position j of every group is one channel, so c1 has 8 to prune
    assert {g.layers: g.width for g in graph.groups} == {("c3", "stem"): 16, ("c1",): 8, ("c2",): 8}
    graph = build_graph(Multiplier(), SHAPE)
    assert graph.unknown == {}
    assert {g.layers: g.width for g in graph.groups} == {("stem",): 8, ("pw",): 12}


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_resnext_block_closed_form(ratio):
    torch.manual_seed(0)
    model = ResNeXt()
    pruned = prune(model, ratio=ratio, input_shape=SHAPE).model
    chain, per_group = int(16 * (1 - ratio)), int(8 * (1 - ratio))       # 8, 4 at 0.5; 11, 5 at 0.3
    smaller = ResNeXt(chain=chain, mid=4 * per_group)
    assert _params(pruned) == _params(smaller)
    assert [p.shape for p in pruned.parameters()] == [p.shape for p in smaller.parameters()]
    assert pruned.c2.groups == 4 and pruned.c2.in_channels == pruned.c2.out_channels == 4 * per_group
    assert _run(pruned, SHAPE).shape == (3, 5)


@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_channel_multiplier_depthwise_closed_form(ratio):
    torch.manual_seed(0)
    pruned = prune(Multiplier(), ratio=ratio, input_shape=SHAPE).model
    c, out = int(8 * (1 - ratio)), int(12 * (1 - ratio))                 # 4, 6 at 0.5; 5, 8 at 0.3
    smaller = Multiplier(c=c, out=out)
    assert _params(pruned) == _params(smaller)
    assert (pruned.dw.groups, pruned.dw.in_channels, pruned.dw.out_channels) == (c, c, 2 * c)
    assert _run(pruned, SHAPE).shape == (3, 5)


def _zero_pruned_channels(model: nn.Module, ratio: float) -> nn.Module:
    """Random BatchNorm scales, then scale and shift 0 on as many channels of every group as `ratio` removes: those
    channels are exactly 0 after every norm (in every group of a grouped conv, in every filter of a multiplier)."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=gen) + 0.5
            m.bias.data = torch.rand(m.num_features, generator=gen) * 0.4 - 0.2
            m.running_mean = torch.randn(m.num_features, generator=gen) * 0.1
            m.running_var = torch.rand(m.num_features, generator=gen) + 0.5
    graph = build_graph(model, SHAPE)
    chosen = {r for g in graph.groups for r in g.channels[:g.width - int(g.width * (1 - ratio))]}
    for use in graph.uses:
        if isinstance(use.module, nn.BatchNorm2d):
            for j, node in enumerate(use.out_ids):
                if graph.root(node) in chosen:
                    use.module.weight.data[j] = 0.0
                    use.module.bias.data[j] = 0.0
    return model


@pytest.mark.parametrize("net", [ResNeXt, Multiplier])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_zero_channels_pruned_leave_outputs_unchanged(net, ratio):
    torch.manual_seed(0)
    model = _zero_pruned_channels(net(), ratio)
    result = prune(model, ratio=ratio, importance="bn", input_shape=SHAPE)
    assert result.after["param_count"] < result.before["param_count"]
    torch.testing.assert_close(_run(result.model, SHAPE), _run(model, SHAPE), atol=1e-5, rtol=1e-4)


def test_live_channels_pruned_change_outputs():
    """The check above can fail: with nothing zeroed, pruning moves the outputs."""
    torch.manual_seed(0)
    model = ResNeXt()
    assert not torch.allclose(_run(prune(model, ratio=0.5, input_shape=SHAPE).model, SHAPE), _run(model, SHAPE),
                              atol=1e-5)


@pytest.mark.parametrize("net", [ResNeXt, Multiplier])
def test_widths_rebuild_grouped_and_multiplier_convs(net):
    pruned = prune(net(), ratio=0.3, input_shape=SHAPE).model
    rebuilt = apply_widths(net(), layer_widths(pruned))
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in pruned.parameters()]
    assert [m.groups for m in rebuilt.modules() if isinstance(m, nn.Conv2d)] == \
        [m.groups for m in pruned.modules() if isinstance(m, nn.Conv2d)]


def test_widths_reject_sizes_a_grouped_conv_cannot_take():
    with pytest.raises(ValueError, match="groups=4 needs in and out widths divisible"):
        apply_widths(ResNeXt(), {"c2": [30, 32]})
    with pytest.raises(ValueError, match="2 filters per channel"):
        apply_widths(Multiplier(), {"dw": [6, 6]})


@pytest.mark.torchvision   # torch-pruning lives in the zoo leg's environment
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_resnext_same_shapes_as_torch_pruning(ratio):
    """Torch-Pruning's group-conv rule (the same positions leave every group) gives the same shapes. (It raises an
    IndexError on the channel-multiplier conv, torch-pruning 1.6.0, so that one has no cross-check.)"""
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    model = ResNeXt().eval()
    ours = prune(model, ratio=ratio, input_shape=SHAPE).model
    theirs = ResNeXt().eval()
    theirs.load_state_dict(model.state_dict())
    tp.pruner.MetaPruner(theirs, torch.randn(1, *SHAPE), importance=tp.importance.GroupMagnitudeImportance(p=1),
                         pruning_ratio=ratio, ignored_layers=[theirs.fc]).step()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    assert theirs.c2.groups == ours.c2.groups == 4
