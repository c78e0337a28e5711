"""compress.prune: real shrink for every family (closed-form parameter counts), residuals, concatenation,
depthwise, squeeze-excite, flatten -> Linear, zero channels, pinned ops, cards, artifacts, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress import models
from compress.budget import Budget
from compress.prune import PruneConfig, build_graph, prune


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run(model: nn.Module, shape, seed: int = 0) -> torch.Tensor:
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


# ---------------------------------------------------------------- every family, by half, against its closed form
# Halving every channel of a family at width w (channel_divisor=1, so no rounding; every width even) is the same
# architecture as the family at width w/2: the pruned parameter count must equal the smaller model's, exactly.
# (An odd width c keeps floor(c / 2), Torch-Pruning's count: test_odd_widths_keep_the_floor.)
CASES = [
    ("cnn", {}, 1.0, 1.0),
    ("cnn", {"channels": [16, 24, 40], "convs_per_stage": 3, "head": "flatten", "hidden": [64]}, 1.0, 1.0),
    ("mobilenet_v1", {}, 0.5, 1.0),
    ("mobilenet_v1", {}, 0.25, 0.5),
    ("mobilenet_v2", {"last_channel": 320}, 0.5, 1.0),
    ("mobilenet_v2", {"last_channel": 320}, 0.25, 2.0),
    ("mlp", {}, 1.0, 1.0),
    ("mlp", {"hidden": [96, 64]}, 1.0, 2.0),
    ("fer_hw3_cnn", {}, 0.25, 1.0),
    ("fer_hw3_dnn", {}, 1.0, 1.0),
    ("fer_hw8_keras", {}, 2.0, 1.0),        # width 1.0 has a 15-wide layer
    ("fer_hw8_torch", {}, 1.0, 1.0),
]


@pytest.mark.parametrize("name,opts,width,depth", CASES, ids=[f"{c[0]}-w{c[2]}-d{c[3]}" for c in CASES])
def test_every_family_halved_matches_the_smaller_architecture(name, opts, width, depth):
    torch.manual_seed(0)
    kw = dict(width_mult=width, depth_mult=depth, channel_divisor=1, **opts)
    model = models.create(name, **kw)
    result = prune(model, ratio=0.5)
    half_opts = dict(opts)
    if "last_channel" in opts:       # MobileNetV2's head is fixed in width; pruning halves it too
        half_opts["last_channel"] = opts["last_channel"] // 2
    smaller = models.create(name, **{**kw, **half_opts, "width_mult": width / 2})
    assert _params(result.model) == _params(smaller)
    assert result.after["param_count"] == _params(smaller) < result.before["param_count"] == _params(model)
    # every conv and linear layer has the smaller model's shape: the channels are gone, not masked
    assert [tuple(p.shape) for p in result.model.parameters()] == [tuple(p.shape) for p in smaller.parameters()]
    assert _run(result.model, model.card.input_shape).shape == (3, 7)
    assert _params(model) == result.before["param_count"]        # the original is untouched
    original = {id(t) for t in (*model.parameters(), *model.buffers())}
    assert not original & {id(t) for t in (*result.model.parameters(), *result.model.buffers())}


@pytest.mark.parametrize("name,key,wide,narrow", [("mlp", "hidden", [15, 9, 4], [7, 4, 2]),
                                                  ("cnn", "channels", [15, 9, 5], [7, 4, 2])])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_odd_widths_keep_the_floor(name, key, wide, narrow, ratio):
    """A width c keeps floor(c * (1 - ratio)) channels (Torch-Pruning's int(c * (1 - ratio))), never more."""
    if ratio == 0.3:
        narrow = [int(c * 0.7) for c in wide]       # 10, 6, 3
    model = models.create(name, **{key: wide}, channel_divisor=1)
    smaller = models.create(name, **{key: narrow}, channel_divisor=1)
    assert _params(prune(model, ratio=ratio).model) == _params(smaller)


@pytest.mark.parametrize("name", models.list_models())
def test_every_registered_model_prunes_and_its_card_rebuilds_it(name):
    torch.manual_seed(0)
    model = models.create(name, width_mult=0.25)
    result = prune(model, ratio=0.3, round_to=2)
    pruned = result.model
    assert result.after["param_count"] < result.before["param_count"]
    rebuilt = models.rebuild(pruned.card)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in pruned.state_dict().items()}
    rebuilt.load_state_dict(pruned.state_dict())
    assert torch.allclose(_run(rebuilt, model.card.input_shape), _run(pruned, model.card.input_shape))


# ---------------------------------------------------------------- graphs a user writes
class ResNetish(nn.Module):
    """Residual additions, a torch.cat of two branches, a depthwise conv on the concatenation, flatten -> Linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.a1, self.a2 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.b1 = nn.Conv2d(16, 16, 3, padding=1)
        self.side = nn.Conv2d(16, 8, 1)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
        self.fc = nn.Linear(24 * 2 * 2, 5)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = x + self.a2(F.relu(self.a1(x)))          # residual
        x = F.relu(x + self.b1(x))                   # another, same chain
        x = torch.cat([x, self.side(x)], dim=1)      # concatenation: channel offsets
        x = F.adaptive_avg_pool2d(self.dw(x), 2)
        return self.fc(torch.flatten(x, 1))          # a channel is a block of 4 features


def test_residual_and_concat_groups():
    graph = build_graph(ResNetish(), (3, 8, 8))
    layers = {g.layers: g.width for g in graph.groups}
    assert layers == {("a2", "b1", "stem"): 16, ("a1",): 16, ("side",): 8}
    assert graph.unknown == {}


def test_residual_concat_prune_closed_form():
    model = ResNetish()
    result = prune(model, ratio=0.5, input_shape=(3, 8, 8))
    m = result.model
    c, h, s = 8, 8, 4                 # the chain, a1's hidden, the side branch, halved
    expected = (3 * c * 9 + 2 * c +                      # stem (no bias) + bn
                (c * h * 9 + h) + (h * c * 9 + c) +      # a1, a2
                (c * c * 9 + c) + (c * s + s) +          # b1, side
                (c + s) * 9 + (c + s) +                  # depthwise on the concatenation
                (c + s) * 4 * 5 + 5)                     # fc on flattened 2x2 blocks
    assert _params(m) == expected
    assert (m.dw.groups, m.fc.in_features) == (c + s, (c + s) * 4)


class SqueezeNet(nn.Module):
    """Squeeze-excite written functionally: a channel gate multiplies its own input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 12, 3, padding=1)
        self.reduce, self.expand = nn.Conv2d(12, 4, 1), nn.Conv2d(4, 12, 1)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        s = torch.sigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return self.head((x * s).mean((2, 3)))


def test_squeeze_excite_couples_the_gate():
    graph = build_graph(SqueezeNet(), (1, 6, 6))
    assert {g.layers: g.width for g in graph.groups} == {("conv", "expand"): 12, ("reduce",): 4}
    m = prune(SqueezeNet(), ratio=0.5, input_shape=(1, 6, 6)).model
    assert (m.conv.out_channels, m.reduce.in_channels, m.reduce.out_channels, m.expand.out_channels,
            m.head.in_features) == (6, 6, 2, 6, 6)


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3)
        self.g = nn.ConvTranspose2d(8, 8, 3)                  # no rule for transposed convolutions
        self.b = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        x = self.b(self.g(self.a(x))) * torch.arange(6.0, device=x.device).view(6, 1, 1)   # a constant per channel
        return self.fc(torch.roll(x, 1, dims=1).mean((2, 3)))


def test_unknown_ops_pin_and_are_reported():
    graph = build_graph(Odd(), (1, 9, 9))
    assert graph.groups == []
    text = " ".join(graph.unknown)
    assert "convolution (g)" in text and "mul" in text and "roll" in text
    with pytest.raises(ValueError, match="nothing to prune"):
        prune(Odd(), ratio=0.5, input_shape=(1, 9, 9))


# ---------------------------------------------------------------- exactness
def _zero_channels(model: nn.Module, shape, share: float) -> None:
    """Zero BatchNorm's scale and shift on as many channels of every group as `ratio=share` removes (all but
    `floor(width * (1 - share))`): those channels are exactly 0 after every norm, so removing them cannot change
    the outputs."""
    graph = build_graph(model, shape)
    chosen = {r for g in graph.groups for r in g.channels[:g.width - int(g.width * (1 - share))]}
    for use in graph.uses:
        if isinstance(use.module, nn.modules.batchnorm._BatchNorm):
            for j, node in enumerate(use.out_ids):
                if graph.root(node) in chosen:
                    use.module.weight.data[j] = 0.0
                    use.module.bias.data[j] = 0.0


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v1", "cnn", "fer_hw8_torch"])
def test_pruning_zero_channels_leaves_outputs_unchanged(name, randomize_batchnorm):
    torch.manual_seed(0)
    model = randomize_batchnorm(models.create(name, width_mult=0.25, channel_divisor=1))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    shape = model.card.input_shape
    _zero_channels(model, shape, 0.25)
    result = prune(model, ratio=0.25, importance="bn")
    assert result.after["param_count"] < result.before["param_count"]
    torch.testing.assert_close(_run(result.model, shape), _run(model, shape), atol=1e-5, rtol=1e-4)


def test_pruning_nonzero_channels_changes_outputs():
    """The check above can fail: remove live channels and the outputs move."""
    torch.manual_seed(0)
    model = models.create("cnn", width_mult=0.25)
    pruned = prune(model, ratio=0.25).model
    assert not torch.allclose(_run(pruned, (1, 48, 48)), _run(model, (1, 48, 48)), atol=1e-5)


# ---------------------------------------------------------------- downstream tools on a pruned model
def test_pruned_model_saves_loads_profiles_and_exports(tmp_path):
    from compress.export import load, save
    from compress.profile import profile

    torch.manual_seed(0)
    model = models.create("mobilenet_v2", width_mult=0.25)
    pruned = prune(model, ratio=0.5, round_to=4).model
    path = save(pruned, tmp_path / "pruned.npz", codec="fp32")
    loaded = load(path)
    assert torch.equal(_run(loaded, (1, 48, 48)), _run(pruned, (1, 48, 48)))
    assert profile(pruned, (1, 48, 48)).param_count == _params(pruned)
    assert all(w % 4 == 0 for k, (*_, w) in pruned.card.build_args["widths"].items() if "classifier" not in k)


def test_foreign_model_keeps_no_card_and_needs_a_shape():
    model = ResNetish()
    with pytest.raises(ValueError, match="input_shape"):
        prune(model, ratio=0.5)
    pruned = prune(model, ratio=0.5, input_shape=(3, 8, 8)).model
    assert type(pruned) is ResNetish and not hasattr(pruned, "card")


# ---------------------------------------------------------------- bad input: one clear line each
@pytest.mark.parametrize("kw,match", [
    ({"ratio": 0.0}, "ratio must be in"), ({"ratio": 1.0}, "ratio must be in"), ({"ratio": -0.5}, "ratio must be"),
    ({}, "give either ratio or a budget"), ({"ratio": 0.5, "max_params": 10}, "not both"),
    ({"max_params": -3}, "max_params must be a positive"), ({"ratio": 0.5, "importance": "magic"}, "unknown importance"),
    ({"ratio": 0.5, "schedule": "fast"}, "schedule must be"), ({"ratio": 0.5, "steps": 0}, "steps must be"),
    ({"ratio": 0.5, "bogus": 1}, "unknown settings"),
])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        prune(models.create("mlp", hidden=[16]), **kw)


def test_budget_below_reachable_and_failing_forward():
    model = models.create("cnn", width_mult=0.25)
    with pytest.raises(ValueError, match="budget below the smallest reachable model"):
        prune(model, budget=Budget(max_params=100))
    with pytest.raises(ValueError, match=r"forward fails on input shape \(3, 48, 48\)"):
        prune(model, ratio=0.5, input_shape=(3, 48, 48))
    with pytest.raises(TypeError, match="nn.Module"):
        prune("model", ratio=0.5)
    from compress.models import fold_batchnorm

    with pytest.raises(ValueError, match="folded"):
        prune(fold_batchnorm(model), ratio=0.5)


# ---------------------------------------------------------------- torchvision, where it imports
@pytest.mark.torchvision
@pytest.mark.parametrize("arch", ["mobilenet_v2", "resnet18"])
def test_torchvision_halved_matches_closed_form(arch):
    tv = pytest.importorskip("torchvision")
    model = getattr(tv.models, arch)(num_classes=10)
    result = prune(model, ratio=0.5, input_shape=(3, 64, 64))
    assert result.graph and result.unknown == {}
    if arch == "resnet18":     # torchvision's BasicBlock has no width option: count the half-width net by hand
        assert _params(result.model) == _resnet18_params(32, 10)
    else:
        # round_nearest=1 halves every width exactly but keeps the 1280-wide head conv, which pruning halves too
        smaller = tv.models.mobilenet_v2(num_classes=10, width_mult=0.5, round_nearest=1)
        head_in = smaller.features[-1][0].in_channels
        assert _params(result.model) == _params(smaller) - head_in * 640 - 640 * (2 + 10)
    assert _run(result.model, (3, 64, 64)).shape == (3, 10)


def _resnet18_params(c: int, classes: int) -> int:
    total = 3 * c * 49 + 2 * c
    cin = c
    for i, width in enumerate((c, 2 * c, 4 * c, 8 * c)):
        for b in range(2):
            total += cin * width * 9 + 2 * width + width * width * 9 + 2 * width
            if b == 0 and (i > 0):
                total += cin * width + 2 * width       # downsample 1x1 conv + bn
            cin = width
    return total + cin * classes + classes


def test_config_and_keywords_agree():
    model = models.create("mlp", hidden=[32, 16])
    a = prune(model, PruneConfig(ratio=0.5)).model
    b = prune(model, ratio=0.5).model
    c = prune(model, PruneConfig(ratio=0.25), ratio=0.5).model     # keywords override the config
    assert _params(a) == _params(b) == _params(c)


class DataDependent(nn.Module):
    """A forward that reads values (cannot run on meta tensors): the graph is traced on real ones instead."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(1, 8, 3), nn.Conv2d(8, 8, 3), nn.Linear(8, 2)

    def forward(self, x):
        x = F.relu(self.a(x))
        if float(self.b.weight.abs().sum()) >= 0:     # always true, but needs a value
            x = self.b(x)
        return self.fc(x.mean((2, 3)))


def test_a_forward_that_reads_values_is_traced_for_real():
    graph = build_graph(DataDependent(), (1, 8, 8))
    assert {g.layers: g.width for g in graph.groups} == {("a",): 8, ("b",): 8}
    assert prune(DataDependent(), ratio=0.5, input_shape=(1, 8, 8)).model.b.out_channels == 4
