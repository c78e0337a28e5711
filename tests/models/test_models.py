import json

import math

import pytest
import torch
from torch import nn

from compress import models


def conv_linear_params(model):
    """The papers' parameter convention: conv and linear weights and biases, no BatchNorm."""
    return sum(p.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) for p in m.parameters())


def conv_linear_macs(model, shape):
    total = 0

    def hook(mod, inputs, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out[0].numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


# MobileNetV1 paper, Table 6 (width) and Table 7 (resolution): million mult-adds, million parameters.
@pytest.mark.parametrize("width, mmacs, mparams", [(1.0, 569, 4.2), (0.75, 325, 2.6), (0.5, 149, 1.3), (0.25, 41, 0.5)])
def test_mobilenet_v1_table6(width, mmacs, mparams):
    m = models.create("mobilenet_v1", width_mult=width, in_chans=3, num_classes=1000, input_size=224)
    assert round(conv_linear_params(m) / 1e6, 1) == mparams
    assert abs(conv_linear_macs(m, (3, 224, 224)) / 1e6 - mmacs) < 1


@pytest.mark.parametrize("size, mmacs", [(224, 569), (192, 418), (160, 290), (128, 186)])
def test_mobilenet_v1_table7(size, mmacs):
    m = models.create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=size)
    assert abs(conv_linear_macs(m, (3, size, size)) / 1e6 - mmacs) < 1
    assert round(conv_linear_params(m) / 1e6, 1) == 4.2


def test_mobilenet_v1_exact_counts():
    m = models.create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224)
    assert conv_linear_params(m) == 4_210_088
    assert conv_linear_macs(m, (3, 224, 224)) == 568_740_352


def test_mobilenet_v2_matches_torchvision():
    # torchvision.models.mobilenet_v2: num_params 3,504,872 (BatchNorm included), 0.301 GFLOPS (MACs).
    m = models.create("mobilenet_v2", in_chans=3, num_classes=1000, input_size=224)
    assert sum(p.numel() for p in m.parameters()) == 3_504_872
    assert conv_linear_macs(m, (3, 224, 224)) == 300_774_272
    assert m.classifier[-1].in_features == 1280
    small = models.create("mobilenet_v2", width_mult=0.5, in_chans=3, num_classes=1000, input_size=224)
    assert small.classifier[-1].in_features == 1280   # last conv kept at 1280 for width < 1


@pytest.mark.torchvision
def test_mobilenet_v2_matches_torchvision_module_for_module():
    tv = pytest.importorskip("torchvision.models")
    ours = models.create("mobilenet_v2", in_chans=3, num_classes=1000, input_size=224)
    theirs = tv.mobilenet_v2()
    assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in theirs.state_dict().values()]


def test_seed_models_rebuilt_exactly():
    keras = lambda m: sum(p.numel() for p in m.parameters()) + sum(  # noqa: E731
        b.numel() for n, b in m.named_buffers() if "running" in n)
    assert keras(models.create("fer_hw8_keras")) == 104_572          # seed 000, Keras count
    assert keras(models.create("fer_hw3_cnn")) == 5_900_679          # seed 000, Keras count
    assert sum(v.numel() for v in models.create("fer_hw8_torch").state_dict().values()) == 109_761  # seed 001
    assert sum(p.numel() for p in models.create("fer_hw3_dnn").parameters()) == 1_276_409          # seed 004


FAMILIES = ["mobilenet_v1", "mobilenet_v2", "cnn", "mlp"]


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("width", [0.25, 0.5, 1.0])
def test_every_model_forward_backward_fer(name, width):
    m = models.create(name, width_mult=width)
    x = torch.randn(2, 1, 48, 48)
    out = m(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("width", [0.25, 0.5])
def test_every_family_forward_backward_imagenet(name, width):
    m = models.create(name, width_mult=width, in_chans=3, num_classes=10, input_size=224)
    out = m(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 10)
    out.sum().backward()


@pytest.mark.parametrize("name", models.list_models())
def test_build_args_rebuild_identical_architecture(name):
    m = models.create(name, width_mult=0.5, num_classes=5, input_size=32)
    args = json.loads(json.dumps(m.card.build_args))
    rebuilt = models.create(**args)
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in rebuilt.state_dict().items()}


@pytest.mark.parametrize("size", [2, 8, 16, 28, 32, 48])
@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "cnn"])
def test_stride_schedule_adapts_to_small_inputs(name, size):
    m = models.create(name, width_mult=0.25, input_size=size).eval()
    feats = m.features(torch.zeros(1, 1, size, size))
    assert min(feats.shape[-2:]) >= min(2, size)


def test_imagenet_resolution_untouched_by_adaptation():
    m = models.create("mobilenet_v1", in_chans=3, input_size=224)
    assert m.features(torch.zeros(1, 3, 224, 224)).shape[-1] == 7


def test_width_and_depth_multipliers():
    small = models.create("mobilenet_v1", width_mult=0.5)
    assert small.features[0].conv.out_channels == 16
    deep = models.create("mobilenet_v1", depth_mult=2.0)
    base = models.create("mobilenet_v1")
    assert len(deep.features[7]) == 10 and len(base.features[7]) == 5
    assert len(models.create("mlp", depth_mult=2.0).blocks) == 6
    widths = [models.create("cnn", width_mult=w).classifier[-1].in_features for w in (0.25, 0.5, 1.0)]
    assert widths == sorted(widths)


def test_depth_below_one_drops_repeats_then_whole_stages():
    from compress.models.builder import stage_repeats

    v1 = [1, 1, 1, 1, 1, 1, 5, 1, 1]                      # MobileNetV1: 13 blocks in 9 stages
    assert stage_repeats(v1, 1.0) == v1 and stage_repeats(v1, 2.0) == [2, 2, 2, 2, 2, 2, 10, 2, 2]
    assert stage_repeats(v1, 10 / 13) == [1, 1, 1, 1, 1, 1, 2, 1, 1]      # repeats go first
    assert stage_repeats(v1, 7 / 13) == [1, 1, 1, 1, 1, 1, 1, 0, 0]       # then stages from the end
    assert stage_repeats(v1, 0.01) == [1, 0, 0, 0, 0, 0, 0, 0, 0]         # at least one block
    assert stage_repeats([2, 2, 2], 0.5) == [1, 1, 1]                      # the later stage loses first
    assert stage_repeats([2, 2, 2], 5 / 6) == [2, 2, 1]
    for d in (0.9, 0.6, 0.3, 0.1):                                         # ceil(blocks * d) blocks in all
        assert sum(stage_repeats(v1, d)) == max(1, math.ceil(13 * d))
    # the dropped stages are gone from the model: 3 blocks of MobileNetV1 end at 128 channels
    m = models.create("mobilenet_v1", depth_mult=3 / 13, num_classes=10, in_chans=1, input_size=28)
    assert m.classifier[-1].in_features == 128 and len(m.features) == 4
    assert len(models.create("mlp", depth_mult=0.5).blocks) == 2


def test_family_options():
    m = models.create("cnn", channels=[16, 32], hidden=[64], head="flatten").eval()
    assert m(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
    assert models.create("mlp", hidden=(64,)).blocks[0].fc.out_features == 64
    assert isinstance(models.create("mobilenet_v1", act="relu6").features[0].act, nn.ReLU6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="resnet50"), "unknown model 'resnet50'.*mobilenet_v1"),
    (dict(name="mobilenet_v1", width_mult=0), "width_mult"),
    (dict(name="mobilenet_v1", width_mult=float("nan")), "width_mult"),
    (dict(name="mobilenet_v1", width_mult=-0.5), "width_mult"),
    (dict(name="mobilenet_v1", depth_mult=0), "depth_mult"),
    (dict(name="mobilenet_v1", num_classes=1), "num_classes"),
    (dict(name="mobilenet_v1", input_size=1), "input_size"),
    (dict(name="fer_hw3_cnn", input_size=12), "too small"),
    (dict(name="cnn", head="max"), "head"),
    (dict(name="cnn", channels=[]), "channels"),
    (dict(name="mobilenet_v1", colour="red"), "bad option"),
    (dict(name="mobilenet_v1", act="swishy"), "activation"),
    (dict(name="mobilenet_v1", dropout=1.5), "dropout"),
])
def test_bad_settings_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        models.create(**kwargs)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="num_classes"):
        models.create("mlp", num_classes=7.5)
    with pytest.raises(TypeError, match="width_mult"):
        models.create("mlp", width_mult="wide")


def test_registry_rejects_duplicates_and_lists_models():
    assert set(FAMILIES) <= set(models.list_models())
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("cnn")(lambda: None)
    assert all(models.describe().values())
