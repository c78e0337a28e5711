"""compress.prune on representative torchvision and timm models (tests/zoo-leg's environment): each is pruned at
ratio 0.5 with nothing left unknown, gives the right output shape, keeps at most the share of its parameters
Torch-Pruning reaches (CNNs) or 0.7 (transformers, embedding kept), and rebuilds from its unpruned build plus the
widths its card would store."""

from __future__ import annotations

import json

import pytest
import torch

from compress.models.widths import apply_widths, layer_widths, width_changes
from compress.prune import PruneConfig, prune

pytestmark = pytest.mark.torchvision
torchvision = pytest.importorskip("torchvision")

NUM_CLASSES = 10


def _tv(name: str, **kw):
    return lambda: torchvision.models.get_model(name, weights=None, num_classes=NUM_CLASSES, **kw).eval()


def _timm(name: str, **kw):
    def build():
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False, num_classes=NUM_CLASSES, **kw).eval()
    return build


def _params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _check(build, size: int, *, most: float, **settings) -> None:
    torch.manual_seed(0)
    model = build()
    result = prune(model, PruneConfig(ratio=0.5, **settings), input_shape=(3, size, size))
    pruned = result.model
    assert result.unknown == {}
    assert _params(pruned) <= most * _params(model)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        y = pruned.eval()(x)
    assert y.shape == (2, NUM_CLASSES)
    # the card's way back: the unpruned build (meta for the reference) plus the widths that changed, via JSON
    with torch.device("meta"):
        reference = build()
    widths = json.loads(json.dumps(width_changes(layer_widths(reference), layer_widths(pruned))))
    rebuilt = apply_widths(build(), widths)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in pruned.state_dict().items()}
    rebuilt.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), y)


@pytest.mark.parametrize("build,size,most", [
    (_tv("mobilenet_v3_small"), 64, 0.27),       # hardswish_, hardsigmoid, squeeze-excitation
    (_tv("convnext_tiny"), 32, 0.26),            # LayerNorm2d, permutes, layer scale
    (_tv("shufflenet_v2_x0_5"), 64, 0.35),       # channel shuffle, chunk (Torch-Pruning 1.6 fails here)
    (_tv("googlenet"), 64, 0.26),                # concatenations, auxiliary classifiers (traced in train mode)
], ids=["mobilenet_v3_small", "convnext_tiny", "shufflenet_v2_x0_5", "googlenet"])
def test_cnns(build, size, most):
    _check(build, size, most=most)


@pytest.mark.parametrize("build,size", [
    (_tv("vit_b_16", image_size=32), 32),
    (_tv("swin_t"), 64),
    (_timm("vit_tiny_patch16_224", img_size=32), 32),
], ids=["vit_b_16", "swin_t", "timm_vit_tiny"])
@pytest.mark.parametrize("embedding", [False, True], ids=["embedding_kept", "embedding_pruned"])
def test_transformers(build, size, embedding):
    """MLP widths and heads (timm's, on their own; torchvision's, with the embedding); the embedding optionally."""
    _check(build, size, most=0.3 if embedding else 0.7, prune_embedding=embedding)


def test_heads_follow_and_stay_consistent():
    torch.manual_seed(0)
    vit = prune(_timm("vit_tiny_patch16_224", img_size=32)(), ratio=0.5, input_shape=(3, 32, 32)).model
    attn = vit.blocks[0].attn
    assert (attn.num_heads, attn.attn_dim, attn.qkv.out_features, attn.proj.in_features) == (1, 64, 192, 64)
    swin = prune(_tv("swin_t")(), ratio=0.5, input_shape=(3, 64, 64), prune_embedding=True).model
    a = swin.features[1][0].attn
    assert a.num_heads * 32 == a.qkv.in_features == a.proj.out_features and a.num_heads == 1
    assert a.relative_position_bias_table.shape[1] == a.num_heads


def test_no_more_parameters_than_torch_pruning():
    tp = pytest.importorskip("torch_pruning")
    for build, size in ((_tv("mobilenet_v3_small"), 64), (_tv("convnext_tiny"), 32)):
        torch.manual_seed(0)
        model = build()
        ours = _params(prune(model, ratio=0.5, input_shape=(3, size, size)).model)
        theirs = build()
        theirs.load_state_dict(model.state_dict())
        ignored = [m for m in theirs.modules() if isinstance(m, torch.nn.Linear) and m.out_features == NUM_CLASSES]
        tp.pruner.MetaPruner(theirs, torch.randn(1, 3, size, size), importance=tp.importance.MagnitudeImportance(p=1),
                             pruning_ratio=0.5, ignored_layers=ignored).step()
        assert ours <= _params(theirs)


@pytest.mark.parametrize("name,size,options,embedding", [
    ("torchvision:mobilenet_v3_small", 64, {}, False),
    ("torchvision:vit_b_16", 32, {"image_size": 32}, True),
    ("torchvision:regnet_x_400mf", 64, {}, False),          # its builder computes with tensors: not on meta
], ids=["mobilenet_v3_small", "vit_b_16", "regnet_x_400mf"])
def test_the_card_rebuilds_the_pruned_model(name, size, options, embedding):
    from compress.models import create, rebuild

    model = create(name, num_classes=NUM_CLASSES, in_chans=3, input_size=size, **options)
    pruned = prune(model, ratio=0.5, prune_embedding=embedding).model
    rebuilt = rebuild(pruned.card)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in pruned.state_dict().items()}
