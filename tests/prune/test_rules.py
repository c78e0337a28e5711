"""compress.prune on the patterns of the torchvision/timm zoo, written as toy models: in-place activations,
LayerNorm over channels behind a permute round trip, layer scales, squeeze-excitation, channel shuffle, GroupNorm,
attention heads (timm-style with its own attn_dim, nn.MultiheadAttention tied to the embedding), position
embeddings and class tokens; ignored layers and per-layer ratios; failures as one line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress.models.widths import apply_widths, layer_widths, width_changes
from compress.prune import PruneConfig, build_graph, prune


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _run(model: nn.Module, shape, seed: int = 0) -> torch.Tensor:
    x = torch.randn((3, *shape), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(x)


def _rebuilds(fresh: nn.Module, reference: nn.Module, pruned: nn.Module) -> None:
    """The pruned model's widths, through JSON, make a fresh unpruned build the same shapes."""
    widths = json.loads(json.dumps(width_changes(layer_widths(reference), layer_widths(pruned))))
    rebuilt = apply_widths(fresh, widths)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in pruned.state_dict().items()}
    rebuilt.load_state_dict(pruned.state_dict())
    torch.testing.assert_close(_run(rebuilt, SHAPE), _run(pruned, SHAPE))


SHAPE = (3, 16, 16)


# ---------------------------------------------------------------- activations and squeeze-excitation
class MobileV3ish(nn.Module):
    """conv -> BN -> hardswish_ (in place) -> SE (avgpool, conv, SiLU, conv, hardsigmoid, mul) -> GELU -> head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.Hardswish(inplace=True)
        self.reduce = nn.Conv2d(16, 8, 1)
        self.expand = nn.Conv2d(8, 16, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        s = F.hardsigmoid(self.expand(F.silu(self.reduce(x.mean((2, 3), keepdim=True)))), inplace=True)
        x = F.gelu(x * s)
        return self.head(F.relu6(x).mean((2, 3)))


def test_elementwise_activations_pass_channels_through():
    graph = build_graph(MobileV3ish(), SHAPE)
    assert graph.unknown == {}
    assert {g.layers: g.width for g in graph.groups} == {("conv", "expand"): 16, ("reduce",): 8}
    m = prune(MobileV3ish(), ratio=0.5, input_shape=SHAPE).model
    assert (m.conv.out_channels, m.bn.num_features, m.reduce.out_channels, m.expand.out_channels,
            m.head.in_features) == (8, 8, 4, 8, 8)


# ---------------------------------------------------------------- LayerNorm over channels, layer scale
class LayerNorm2d(nn.LayerNorm):
    """torchvision's: a LayerNorm over the channels of an NCHW tensor, by a permute round trip."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtish(nn.Module):
    def __init__(self, dim: int = 12):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), LayerNorm2d(dim))
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.layer_scale = nn.Parameter(torch.rand(dim, 1, 1) + 0.5)
        self.head = nn.Sequential(LayerNorm2d(dim), nn.Flatten(1), nn.Linear(dim * 16, 5))

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)
        return self.head(x + self.layer_scale * y)


def test_layernorm2d_and_layer_scale_are_pruned_with_their_channels():
    torch.manual_seed(0)
    model = ConvNeXtish()
    graph = build_graph(model, SHAPE)
    assert graph.unknown == {}
    assert sorted(g.width for g in graph.groups) == [12, 48]
    m = prune(model, ratio=0.5, input_shape=SHAPE).model
    assert m.stem[1].normalized_shape == (6,) and m.norm.normalized_shape == (6,) and m.dw.groups == 6
    assert m.layer_scale.shape == (6, 1, 1) and isinstance(m.layer_scale, nn.Parameter)
    assert m.fc1.out_features == 24 and m.head[2].in_features == 6 * 16
    assert _run(m, SHAPE).shape == (3, 5)
    _rebuilds(ConvNeXtish(), ConvNeXtish(), m)


# ---------------------------------------------------------------- channel shuffle
def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)


class ShuffleBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.branch = nn.Sequential(nn.Conv2d(c // 2, c // 2, 1), nn.BatchNorm2d(c // 2), nn.ReLU(),
                                    nn.Conv2d(c // 2, c // 2, 3, padding=1, groups=c // 2), nn.BatchNorm2d(c // 2),
                                    nn.Conv2d(c // 2, c // 2, 1), nn.BatchNorm2d(c // 2), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((x1, self.branch(x2)), dim=1), 2)


class ShuffleNetish(nn.Module):
    def __init__(self, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.blocks = nn.Sequential(ShuffleBlock(c), ShuffleBlock(c))
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.blocks(self.stem(x)).mean((2, 3), keepdim=True), 1))


def test_channel_shuffle_chunk_and_split_are_understood():
    torch.manual_seed(0)
    graph = build_graph(ShuffleNetish(), SHAPE)
    assert graph.unknown == {}
    result = prune(ShuffleNetish(), ratio=0.5, input_shape=SHAPE)
    m = result.model
    assert result.after["param_count"] < 0.45 * result.before["param_count"]
    assert m.stem[0].out_channels % 2 == 0 and m.blocks[0].branch[0].in_channels == m.stem[0].out_channels // 2
    assert _run(m, SHAPE).shape == (3, 5)
    _rebuilds(ShuffleNetish(), ShuffleNetish(), m)


# ---------------------------------------------------------------- GroupNorm
class GroupNormNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.inorm = nn.GroupNorm(16, 16)       # one group per channel: num_groups shrinks with them
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.inorm(F.relu(self.gn(self.conv(x)))).mean((2, 3)))


def test_groupnorm_keeps_its_groups_valid():
    m = prune(GroupNormNet(), ratio=0.5, input_shape=SHAPE).model
    assert (m.conv.out_channels, m.gn.num_channels, m.gn.num_groups, m.inorm.num_groups) == (8, 8, 4, 8)
    assert _run(m, SHAPE).shape == (3, 5)
    _rebuilds(GroupNormNet(), GroupNormNet(), m)


# ---------------------------------------------------------------- attention
class Attention(nn.Module):
    """timm's Attention: q, k, v from one Linear; its own attn_dim (so heads go on their own)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int = 4):
        super().__init__()
        self.num_heads, self.head_dim, self.attn_dim = num_heads, head_dim, num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * self.attn_dim)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.attn_dim))


class TinyViT(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4, mha: bool = False):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.hidden_dim = dim
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.ln1, self.ln2, self.ln = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True) if mha else Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, 5)

    def forward(self, x):
        x = self.patch(x).reshape(x.shape[0], self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        y = self.ln1(x)
        y = self.attn(y, y, y, need_weights=False)[0] if isinstance(self.attn, nn.MultiheadAttention) else self.attn(y)
        x = x + y
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln(x)[:, 0])


def test_heads_and_mlp_are_pruned_the_embedding_stays():
    torch.manual_seed(0)
    graph = build_graph(TinyViT(), SHAPE)
    assert graph.unknown == {}
    assert sorted((g.name, g.width) for g in graph.groups) == [("attn.qkv", 4), ("mlp.0", 64)]
    m = prune(TinyViT(), ratio=0.5, input_shape=SHAPE).model
    assert (m.attn.num_heads, m.attn.attn_dim, m.attn.qkv.out_features, m.attn.proj.in_features) == (2, 8, 24, 8)
    assert m.mlp[0].out_features == 32 and m.pos.shape == (1, 17, 16)
    _rebuilds(TinyViT(), TinyViT(), m)


def test_removing_heads_that_contribute_nothing_changes_nothing():
    torch.manual_seed(0)
    model = TinyViT()
    with torch.no_grad():           # heads 1 and 3: no weight in, no weight out
        for h in (1, 3):
            for part in range(3):
                model.attn.qkv.weight[part * 16 + h * 4:part * 16 + h * 4 + 4] = 0
            model.attn.proj.weight[:, h * 4:h * 4 + 4] = 0
    pruned = prune(model, ratio=0.5, input_shape=SHAPE, layer_ratios={"mlp": 0.0}).model
    assert pruned.attn.num_heads == 2 and pruned.mlp[0].out_features == 64
    torch.testing.assert_close(_run(pruned, SHAPE), _run(model, SHAPE))


def test_the_embedding_width_optionally_with_tied_heads():
    torch.manual_seed(0)
    for mha in (False, True):
        result = prune(TinyViT(mha=mha), ratio=0.5, input_shape=SHAPE, prune_embedding=True)
        m = result.model
        assert m.patch.out_channels == m.hidden_dim == 8 and m.cls.shape == (1, 1, 8) and m.pos.shape == (1, 17, 8)
        assert m.ln1.normalized_shape == (8,) and m.head.in_features == 8
        if mha:    # the embedding is heads x head_dim: both halve together
            assert (m.attn.embed_dim, m.attn.num_heads, m.attn.head_dim, m.attn.in_proj_weight.shape) == \
                (8, 2, 4, (24, 8))
        assert _run(m, SHAPE).shape == (3, 5)
        _rebuilds(TinyViT(mha=mha), TinyViT(mha=mha), m)


def test_tied_heads_stay_with_the_embedding_by_default():
    graph = build_graph(TinyViT(mha=True), SHAPE)
    assert [g.name for g in graph.groups] == ["mlp.0"]
    assert any("embedding width" in why for why in graph.trace.pinned.values())


# ---------------------------------------------------------------- ignored layers, per-layer ratios
class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_ignored_layers_and_layer_ratios():
    m = prune(Plain(), ratio=0.5, input_shape=SHAPE, ignored_layers=["features.2"],
              layer_ratios={"features.4": 0.25, "features": 0.75}).model
    f = m.features
    assert (f[0].out_channels, f[2].out_channels, f[4].out_channels) == (4, 16, 12)
    with pytest.raises(ValueError, match="nothing to prune"):
        prune(Plain(), PruneConfig(ratio=0.5, ignored_layers=["features"]), input_shape=SHAPE)


@pytest.mark.parametrize("settings,name", [({"ignored_layers": ["features.9"]}, "features.9"),
                                           ({"layer_ratios": {"feature": 0.5}}, "feature")])
def test_a_layer_that_does_not_exist_is_named(settings, name):
    with pytest.raises(ValueError, match=rf"'{name}' is not a layer of this model"):
        prune(Plain(), ratio=0.5, input_shape=SHAPE, **settings)


@pytest.mark.parametrize("settings,error", [({"ignored_layers": "fc"}, TypeError),
                                            ({"layer_ratios": {"fc": 1.0}}, ValueError),
                                            ({"layer_ratios": ["fc"]}, TypeError)])
def test_bad_layer_settings(settings, error):
    with pytest.raises(error):
        PruneConfig(ratio=0.5, **settings)


# ---------------------------------------------------------------- unknown things: pinned and named, one line
class HardCoded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = self.conv(x).view(x.shape[0], 16, 14, 14)     # a literal width: no longer true once pruned
        return self.fc(y.mean((2, 3)))


def test_a_pruned_forward_that_fails_is_one_line_naming_the_module():
    with pytest.raises(ValueError, match=r"forward fails in HardCoded \(model\): shape '\[2, 16, 14, 14\]'"):
        prune(HardCoded(), ratio=0.5, input_shape=SHAPE)


class Fourier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.conv(x)
        x = torch.fft.fft2(x).abs() + x
        return self.fc(self.conv2(x).mean((2, 3)))


def test_unknown_ops_are_pinned_and_named():
    graph = build_graph(Fourier(), SHAPE)
    assert any(k.startswith("_fft") for k in graph.unknown)
    assert [g.name for g in graph.groups] == ["conv2"]


def test_the_table_is_measured_when_read():
    model = Plain()
    result = prune(model, ratio=0.5, input_shape=SHAPE)
    assert result.before["param_count"] == _params(model) and result.after["param_count"] == _params(result.model)
    assert "size_bytes" in result.table() and json.dumps(result.to_dict())


class Stacked(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.stack([self.a(x), self.b(x)], dim=1).amax(1)       # both branches' channels go together
        return self.fc(y.mean((2, 3)))


def test_stack_joins_its_operands():
    graph = build_graph(Stacked(), SHAPE)
    assert graph.unknown == {} and [(g.layers, g.width) for g in graph.groups] == [(("a", "b"), 8)]


class GainConv(nn.Conv2d):
    """timm's ScaledStdConv2d: a conv subclass with its own per-output tensor."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.rand(self.out_channels, 1, 1, 1) + 0.5)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.gain, self.bias, self.stride, self.padding)


class GainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = GainConv(3, 8, 3), GainConv(8, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.b(F.relu(self.a(x))).mean((2, 3)))


def test_a_conv_subclass_keeps_its_per_output_tensors():
    torch.manual_seed(0)
    model = GainNet()
    m = prune(model, ratio=0.5, input_shape=SHAPE).model
    assert m.a.gain.shape == (4, 1, 1, 1) and m.b.gain.shape == (4, 1, 1, 1)
    assert m.a.gain.data_ptr() != model.a.gain.data_ptr()
    _rebuilds(GainNet(), GainNet(), m)


class Literal(nn.Module):
    """Reads a width the trace cannot see (a literal): its pruned forward fails."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)

    def forward(self, x):
        b, n, _ = x.shape
        return self.q(x).reshape(b, n, 2, 4).flatten(2)


class WithLiteral(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.mix = Literal()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 5)

    def forward(self, x):
        x = self.mix(self.stem(x).flatten(2).transpose(1, 2))
        return self.fc2(F.relu(self.fc1(x))).mean(1)


def test_a_module_whose_pruned_forward_fails_is_kept_whole_and_named():
    result = prune(WithLiteral(), ratio=0.5, input_shape=SHAPE)
    m = result.model
    assert m.mix.q.out_features == 8 and m.stem.out_channels == 8 and m.fc1.out_features == 8
    assert any("Literal (mix" in k and "kept whole" in k for k in result.unknown)
    assert _run(m, SHAPE).shape == (3, 5)
