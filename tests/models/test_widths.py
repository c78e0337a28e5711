"""compress.models.widths: the entries a pruned model's card stores, and how they are re-applied: layers by
``[in, out]`` / ``[n]`` (the format old cards hold), other modules' int attributes, tensors held by other
modules."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from compress.models.widths import apply_widths, layer_widths, width_changes


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Heads(nn.Module):
    def __init__(self, dim=8, heads=4):
        super().__init__()
        self.num_heads, self.shape = heads, (dim, 1, 1)
        self.table = nn.Parameter(torch.randn(9, heads))
        self.register_buffer("index", torch.arange(9))
        self.qkv = nn.Linear(dim, 3 * dim)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bias=False)
        self.dw = nn.Conv2d(8, 16, 3, groups=8)
        self.norm = LayerNorm2d(16)
        self.gn = nn.GroupNorm(4, 16)
        self.inorm = nn.InstanceNorm2d(16, affine=True, track_running_stats=True)
        self.attn = Heads()
        self.cls = nn.Parameter(torch.randn(1, 1, 8))


def test_entries():
    w = layer_widths(Net())
    assert w["conv"] == [3, 8] and w["dw"] == [8, 16] and w["norm"] == [16] and w["gn"] == [16]
    assert w["inorm"] == [16] and w["attn.qkv"] == [8, 24]
    assert w["attn"] == {"num_heads": 4, "shape": [8, 1, 1]} and w["attn.table"] == {"shape": [9, 4]}
    assert w["cls"] == {"shape": [1, 1, 8]} and w["attn.index"] == {"shape": [9]}


def _pruned() -> nn.Module:
    net = Net()
    net.conv.out_channels, net.conv.weight = 4, nn.Parameter(net.conv.weight[:4].clone())
    net.dw = nn.Conv2d(4, 8, 3, groups=4)
    net.norm, net.gn = LayerNorm2d(8), nn.GroupNorm(4, 8)
    net.inorm = nn.InstanceNorm2d(8, affine=True, track_running_stats=True)
    net.attn.num_heads, net.attn.shape = 2, (4, 1, 1)
    net.attn.table = nn.Parameter(net.attn.table[:, :2].clone())
    net.attn.qkv = nn.Linear(8, 12)
    net.cls = nn.Parameter(net.cls[..., :4].clone())
    return net


def test_changes_rebuild_the_same_shapes_and_attributes():
    pruned = _pruned()
    changes = json.loads(json.dumps(width_changes(layer_widths(Net()), layer_widths(pruned))))
    assert changes["attn"] == {"num_heads": 2, "shape": [4, 1, 1]} and changes["cls"] == {"shape": [1, 1, 4]}
    assert "attn.index" not in changes
    rebuilt = apply_widths(Net(), changes)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}
    assert type(rebuilt.norm) is LayerNorm2d and rebuilt.norm.normalized_shape == (8,)
    assert rebuilt.attn.shape == (4, 1, 1) and rebuilt.attn.num_heads == 2 and rebuilt.dw.groups == 4
    assert rebuilt.gn.num_groups == 4 and isinstance(rebuilt.cls, nn.Parameter)


def test_old_cards_still_apply():
    rebuilt = apply_widths(Net(), {"conv": [3, 4], "dw": [4, 8], "norm": [8], "attn.qkv": [8, 12]})
    assert rebuilt.dw.weight.shape == (8, 1, 3, 3) and rebuilt.norm.weight.shape == (8,)


def test_on_the_meta_device():
    with torch.device("meta"):
        rebuilt = apply_widths(Net(), width_changes(layer_widths(Net()), layer_widths(_pruned())))
    assert rebuilt.attn.table.is_meta and rebuilt.attn.table.shape == (9, 2)


@pytest.mark.parametrize("widths,match", [
    ({"nope": [1, 2]}, "not a conv, linear or norm layer"),
    ({"attn": [1, 2]}, "not a conv, linear or norm layer"),
    ({"nope.table": {"shape": [9, 2]}}, "not a module or tensor"),
    ({"attn.table": {"shape": [9, 5]}}, "no larger than"),
    ({"attn": {"num_heads": "two"}}, "does not fit"),
    ({"attn": {"missing": 2}}, "does not fit"),
    ({"gn": [6]}, "divisible"),
    ({"dw": [4, 4]}, "2 filters per channel"),
])
def test_bad_entries_name_the_path(widths, match):
    with pytest.raises(ValueError, match=match):
        apply_widths(Net(), widths)
