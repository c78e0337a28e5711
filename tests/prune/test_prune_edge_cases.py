"""compress.prune on unlucky models (issue 27: N8, N9, N10, N19): steps that reach the ratio asked, a layer used
twice, tuple and dict outputs, branches the trace did not take, tied weights, and a given model that stays as it
was (buffers, gradients, flags). Each ends in a correct result (checked on outputs: channels zeroed beforehand
are removed without changing them) or in one ValueError naming the module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress import models
from compress.prune import build_graph, prune

SHAPE = (3, 8, 8)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _x(shape=SHAPE, seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def _outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        y = model.eval()(x)
    if isinstance(y, dict):
        return list(y.values())
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _randomized(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5, generator=g)
            m.bias.data.uniform_(-0.2, 0.2, generator=g)
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _zero_channels(model: nn.Module, shape, share: float) -> None:
    """Zero every BatchNorm's scale and shift on the channels `ratio=share` removes in each group (its first
    ones), so that removing them cannot change any output (importance "bn" then picks exactly those)."""
    graph = build_graph(model, shape)
    chosen = {r for g in graph.groups for r in g.channels[:g.width - int(g.width * (1 - share))]}
    for use in graph.uses:
        if isinstance(use.module, nn.modules.batchnorm._BatchNorm):
            for j, node in enumerate(use.out_ids):
                if graph.root(node) in chosen:
                    use.module.weight.data[j] = 0.0
                    use.module.bias.data[j] = 0.0


def _same_outputs_after_pruning(model: nn.Module, shape=SHAPE, share: float = 0.5, inputs=None, **settings):
    """Prune zeroed channels of `model` (importance "bn"): the pruned model must be smaller and give the same
    outputs on `inputs` (default: one batch of `shape`)."""
    torch.manual_seed(0)
    model = _randomized(model)
    _zero_channels(model, shape, share)
    result = prune(model, ratio=share, importance="bn", input_shape=shape, **settings)
    assert _params(result.model) < _params(model)
    for x in inputs if inputs is not None else [_x(shape)]:
        for a, b in zip(_outputs(result.model, x), _outputs(model, x), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    return result


def cbr(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


# ---------------------------------------------------------------- N8: steps reach the ratio asked
@pytest.mark.parametrize("steps,schedule", [(10, "linear"), (4, "agp"), (3, "linear")])
def test_steps_reach_the_same_widths_as_one_step(steps, schedule):
    torch.manual_seed(0)
    model = models.create("cnn", width_mult=0.25)
    one = prune(model, ratio=0.1)
    many = prune(model, ratio=0.1, steps=steps, schedule=schedule)
    assert [p.shape for p in many.model.parameters()] == [p.shape for p in one.model.parameters()]
    assert many.after["param_count"] == one.after["param_count"] > 0.75 * many.before["param_count"]
    assert many.steps[-1]["ratio"] == pytest.approx(0.1)
    counts = [row["param_count"] for row in many.steps]
    assert counts == sorted(counts, reverse=True)     # never wider again; a step may remove nothing


def test_steps_reach_the_ratio_with_global_ranking_and_layer_ratios():
    torch.manual_seed(0)
    model = models.create("cnn", width_mult=0.25)
    for kw in ({"layer_ratios": {"features.0": 0.5}}, {"round_to": 4}):
        one = prune(model, ratio=0.3, **kw)
        many = prune(model, ratio=0.3, steps=5, **kw)
        assert [p.shape for p in many.model.parameters()] == [p.shape for p in one.model.parameters()], kw
    # one global ranking per step may spread the channels differently; the total kept is the same
    total = lambda m: sum(g.width for g in build_graph(m, (1, 48, 48)).groups)  # noqa: E731
    one = prune(model, ratio=0.3, global_ranking=True)
    many = prune(model, ratio=0.3, steps=5, global_ranking=True)
    assert total(many.model) == total(one.model) == int(total(model) * 0.7)


def test_a_step_removes_no_channel_where_the_ratio_asks_none():
    model = models.create("mlp", hidden=[8], norm=False, input_size=4)
    result = prune(model, ratio=0.2, steps=4)      # 8 wide: floor(8 * (1 - 0.05 k)) = 7, 7, 6, 6
    widths = []

    def finetune(m, step):
        widths.append(m.blocks[0].fc.out_features)

    prune(model, ratio=0.2, steps=4, finetune=finetune)
    assert widths == [7, 7, 6, 6] and result.model.blocks[0].fc.out_features == 6


# ---------------------------------------------------------------- N9: a layer used twice
class SharedConsumer(nn.Module):
    """One conv applied to the outputs of two different convs: both producers keep the same channels."""

    def __init__(self):
        super().__init__()
        self.p1, self.p2 = cbr(3, 8), cbr(3, 8)
        self.b = nn.Conv2d(8, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        y = self.bn(self.b(self.p1(x))) + self.bn(self.b(self.p2(x)))
        return self.head(F.relu(y).mean((2, 3)))


def test_a_layer_reading_two_producers_joins_them():
    graph = build_graph(SharedConsumer(), SHAPE)
    assert {g.layers: g.width for g in graph.groups} == {("p1.0", "p2.0"): 8, ("b",): 6}
    m = _same_outputs_after_pruning(SharedConsumer()).model
    assert (m.p1[0].out_channels, m.p2[0].out_channels, m.b.in_channels, m.b.out_channels) == (4, 4, 4, 3)


class Reused(nn.Module):
    """A conv and a Linear each applied twice in sequence."""

    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 8)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.mid = nn.Linear(8, 12)
        self.fc = nn.Linear(12, 12)
        self.head = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.bn2(self.c(F.relu(self.bn1(self.c(x))))))
        h = F.relu(self.mid(x.mean((2, 3))))
        return self.head(self.fc(F.relu(self.fc(h))))


def test_a_layer_reused_in_sequence_is_pruned_in_and_out_together():
    graph = build_graph(Reused(), SHAPE)
    layers = {g.layers: g.width for g in graph.groups}
    assert layers == {("c", "stem.0"): 8, ("fc", "mid"): 12}
    m = _same_outputs_after_pruning(Reused(), layer_ratios={"fc": 0.0, "mid": 0.0}).model
    assert (m.stem[0].out_channels, m.c.in_channels, m.c.out_channels) == (4, 4, 4)
    torch.manual_seed(0)
    pruned = prune(Reused(), ratio=0.5, input_shape=SHAPE).model      # the Linears too: no raw RuntimeError
    assert pruned.fc.in_features == pruned.fc.out_features == pruned.mid.out_features == 6
    assert _outputs(pruned, _x())[0].shape == (3, 5)


# ---------------------------------------------------------------- N10: outputs, branches, ties
class TwoOutputs(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.a, self.b = cbr(3, 8), cbr(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        h = self.a(x)
        feat = self.b(h)
        logits = self.head(feat.mean((2, 3)))
        if self.kind == "tuple":
            return logits, feat
        if self.kind == "list":
            return [logits, [feat]]
        return {"logits": logits, "features": feat}


@pytest.mark.parametrize("kind", ["tuple", "list", "dict"])
def test_tuple_list_and_dict_outputs_keep_every_output(kind):
    result = _same_outputs_after_pruning(TwoOutputs(kind))
    m = result.model
    assert m.b[0].out_channels == 8 and m.a[0].out_channels == 4       # an output's channels are pinned
    with pytest.raises(ValueError, match=r"output is \(2, 4\), \(2, 8, 8, 8\), not"):
        from compress.prune.pruner import _check_forward
        _check_forward(m, SHAPE, ((2, 4), (2, 8, 8, 8), (2, 8, 8, 8)))


class BranchBlock(nn.Module):
    """A block whose path depends on the input size: the trace takes one branch only."""

    def __init__(self):
        super().__init__()
        self.big, self.small = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return F.relu(self.bn(self.big(x) if x.shape[-1] >= 8 else self.small(x)))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 8), cbr(8, 8))
        self.block = BranchBlock()
        self.tail = cbr(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.tail(self.block(self.stem(x))).mean((2, 3)))


def test_a_branch_the_trace_did_not_take_stays_whole_and_its_neighbours_are_pinned():
    small, large = (3, 4, 4), SHAPE
    result = _same_outputs_after_pruning(Branchy(), inputs=[_x(large), _x(small)])
    m = result.model
    assert (m.block.small.in_channels, m.block.small.out_channels) == (8, 8)
    assert m.stem[1][0].out_channels == 8 and m.block.big.out_channels == 8     # what the block sees: pinned
    assert m.stem[0][0].out_channels == 4 and m.tail[0].out_channels == 4      # the rest is pruned
    assert any("block.small" in k and "not run by the traced forward" in k for k in result.unknown)


class RootBranch(nn.Module):
    def __init__(self, deep: bool = True):
        super().__init__()
        block = (lambda: nn.Sequential(cbr(8, 8), cbr(8, 8))) if deep else (lambda: cbr(8, 8))
        self.a, self.b1, self.b2 = cbr(3, 8), block(), block()
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.a(x)
        x = self.b1(x) if x.shape[-1] >= 8 else self.b2(x)
        return self.head(x.mean((2, 3)))


def test_a_branch_in_the_models_own_forward_pins_what_it_sees():
    result = _same_outputs_after_pruning(RootBranch(), inputs=[_x(SHAPE), _x((3, 4, 4))])
    m = result.model
    assert (m.a[0].out_channels, m.b1[1][0].out_channels, m.b1[0][0].out_channels) == (8, 8, 4)
    assert all(c.in_channels == c.out_channels == 8 for c in (m.b2[0][0], m.b2[1][0]))
    assert any(k.startswith("Sequential (b2)") for k in result.unknown)
    with pytest.raises(ValueError, match=r"nothing to prune.*Sequential \(b2\) \(not run by the traced forward"):
        prune(RootBranch(deep=False), ratio=0.5, input_shape=SHAPE)


class ScaleBranch(nn.Module):
    """A parameter read only in a branch the trace does not take (a per-channel scale)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Sequential(cbr(3, 8), cbr(8, 8)), cbr(8, 8)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 8).view(1, 8, 1, 1))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.b(self.a(x))
        if x.shape[-1] < 8:
            x = x * self.scale
        return self.head(x.mean((2, 3)))


def test_a_parameter_the_trace_never_read_stays_whole():
    result = _same_outputs_after_pruning(ScaleBranch(), inputs=[_x(SHAPE), _x((3, 4, 4))])
    assert result.model.scale.shape == (1, 8, 1, 1) and result.model.b[0].out_channels == 8
    assert result.model.a[0][0].out_channels == 4 and result.model.a[1][0].out_channels == 8
    assert any(k.startswith("scale (never read") for k in result.unknown)


class Tied(nn.Module):
    def __init__(self, parallel: bool):
        super().__init__()
        self.parallel = parallel
        self.stem = cbr(3, 8)
        self.c1, self.c2 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.c2.weight = self.c1.weight
        self.bn1, self.bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        if self.parallel:
            x = torch.cat([F.relu(self.bn1(self.c1(x))), F.relu(self.bn2(self.c2(x)))], 1)
            return self.head(x.mean((2, 3))[:, :8] + x.mean((2, 3))[:, 8:])
        x = F.relu(self.bn2(self.c2(F.relu(self.bn1(self.c1(x))))))
        return self.head(x.mean((2, 3)))


def test_tied_weights_stay_tied_in_sequence():
    result = _same_outputs_after_pruning(Tied(parallel=False))
    m = result.model
    assert m.c2.weight is m.c1.weight and m.c1.weight.shape == (4, 4, 3, 3)
    assert m.c1.bias is not m.c2.bias


def test_tied_weights_on_parallel_branches_stay_tied():
    torch.manual_seed(0)
    model = Tied(parallel=True)
    result = prune(model, ratio=0.5, input_shape=SHAPE)
    m = result.model
    assert m.c2.weight is m.c1.weight and model.c2.weight is model.c1.weight
    assert _outputs(m, _x())[0].shape == (3, 4)


def test_a_weight_tied_to_a_parameter_used_elsewhere_stays_whole_and_tied():
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(cbr(3, 8), cbr(8, 8))
            self.proj = nn.Linear(8, 8)
            self.w = self.proj.weight           # the same weight read functionally

        def forward(self, x):
            h = self.a(x).mean((2, 3))
            return self.proj(h) + F.linear(h, self.w)

    result = prune(Head(), ratio=0.5, input_shape=SHAPE)
    assert result.model.w is result.model.proj.weight and result.model.w.shape == (8, 8)
    assert result.model.a[0][0].out_channels == 4
    assert any("one tensor shared" in k for k in result.unknown)
    assert _outputs(result.model, _x())[0].shape == (3, 8)


# ---------------------------------------------------------------- N19: the given model stays as it was
class Counting(nn.Module):
    """A forward that changes state: a counter buffer, and BatchNorm statistics in train mode."""

    def __init__(self, values: bool = False):
        super().__init__()
        self.values = values
        self.a, self.b = cbr(3, 8), cbr(8, 8)
        self.head = nn.Linear(8, 4)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls += 1
        if self.values and float(x.abs().sum()) < 0:      # needs values: traced on real tensors
            x = -x
        return self.head(self.b(self.a(x)).mean((2, 3)))


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("values", [False, True])
@pytest.mark.parametrize("importance", ["l1", "taylor"])
def test_the_given_model_its_buffers_and_gradients_are_untouched(values, importance):
    from compress.data.bundle import Split

    torch.manual_seed(0)
    model = _randomized(Counting(values)).train()
    model.b[1].eval()                                        # mixed flags come back as they were
    grads = {}
    for n, p in model.named_parameters():
        p.grad = torch.full_like(p, 0.25)
        grads[n] = p.grad
    before = _state(model)
    split = Split(x=(torch.rand(16, *SHAPE) * 255).to(torch.uint8), y=torch.randint(0, 4, (16,)))
    result = prune(model, ratio=0.5, input_shape=SHAPE, importance=importance, data=split,
                   normalizer=lambda x: x.float() / 255, evaluate=lambda m: 0.5)
    assert result.model.a[0].out_channels == 4
    after = _state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is grads[n] and bool((p.grad == 0.25).all()) for n, p in model.named_parameters())
    assert model.training and model.a[1].training and not model.b[1].training


def test_taylor_importance_keeps_the_callers_gradients():
    from compress.prune import importance

    torch.manual_seed(0)
    model = _randomized(Counting())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    graph = build_graph(model, SHAPE)
    scores = importance(graph, "taylor", batches=[(_x(), torch.tensor([0, 1, 2]))])
    assert len(scores) == sum(g.width for g in graph.groups)
    assert all(bool((p.grad == 1).all()) for p in model.parameters()) and float(model.calls) == 0


class TwoLayouts(nn.Module):
    """A conv called once on channels and once on a tensor whose channels run along another dim (no rule reads
    that call): every call keeps it whole, whichever came first."""

    def __init__(self, first_understood: bool):
        super().__init__()
        self.first_understood = first_understood
        self.a, self.c = nn.Sequential(cbr(3, 8), cbr(8, 8)), nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.a(x)                                   # (N, 8, 8, 8)
        odd = x.transpose(1, 3)                          # the channels now along the last dim
        calls = [F.relu(self.bn(self.c(x))), self.c(odd)]
        if not self.first_understood:
            calls = [self.c(odd), F.relu(self.bn(self.c(x)))]
        return self.head(torch.cat([t.mean((2, 3)) for t in calls], 1))


@pytest.mark.parametrize("first_understood", [True, False])
def test_a_layer_with_one_call_not_understood_stays_whole_on_every_call(first_understood):
    model = TwoLayouts(first_understood)
    graph = build_graph(model, SHAPE)
    assert all("c" not in g.layers for g in graph.groups)
    result = _same_outputs_after_pruning(TwoLayouts(first_understood))
    m = result.model
    assert (m.c.in_channels, m.c.out_channels, m.a[0][0].out_channels) == (8, 8, 4)
    assert any("Conv2d (c)" in k for k in result.unknown)
    assert not any("pruned forward failed" in k for k in result.unknown)


class ValueBranch(nn.Module):
    """A branch chosen by the input's values (traced on real tensors): the trace takes the first one only."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 8), cbr(8, 8))
        self.usual, self.rare = cbr(8, 8), cbr(8, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        x = self.usual(x) if float(x.mean()) < 100 else self.rare(x)
        return self.head(x.mean((2, 3)))


def test_a_branch_chosen_by_values_is_not_pruned_from_under_it():
    rare = _x() * 1000                 # takes the other branch
    result = _same_outputs_after_pruning(ValueBranch(), inputs=[_x(), rare])
    m = result.model
    assert m.stem[0][0].out_channels == 4 and m.stem[1][0].out_channels == 8
    assert (m.rare[0].in_channels, m.rare[0].out_channels) == (8, 8)
    assert any(k.startswith("Sequential (rare)") for k in result.unknown)


def test_tied_weights_stay_tied_over_steps_and_the_original_stays_tied():
    model = Tied(parallel=False)
    result = prune(model, ratio=0.5, input_shape=SHAPE, steps=3)
    assert result.model.c1.weight is result.model.c2.weight and result.model.c1.weight.shape == (4, 4, 3, 3)
    assert model.c1.weight is model.c2.weight and model.c1.weight.shape == (8, 8, 3, 3)
