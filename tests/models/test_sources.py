"""Models from outside the registry: PATH.py:NAME, torchvision:NAME, timm:NAME (compress.models.sources)."""

from __future__ import annotations

import textwrap

import pytest
import torch

from compress.models import card_of, create, rebuild
from compress.models.sources import is_external, source_label

USER_MODEL = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyResNet(nn.Module):
        """Residual add, a concat, a depthwise conv, BatchNorm."""
        def __init__(self, width=8, num_classes=10, in_chans=1):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                      nn.ReLU())
            self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
            self.side = nn.Conv2d(width, width, 1)
            self.head = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            x = self.stem(x)
            x = torch.cat([x + self.dw(x), torch.relu(self.side(x))], 1)
            return self.head(x.mean((2, 3)))

    def small(width=4):
        return TinyResNet(width=width, num_classes=3)

    def not_a_module():
        return 42

    def raises():
        raise RuntimeError("bad config")

    class NeedsBig(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.fc = nn.Linear(3 * 64 * 64, num_classes)
        def forward(self, x):
            return self.fc(x.flatten(1))
''')


@pytest.fixture()
def user_file(tmp_path):
    path = tmp_path / "mymodel.py"
    path.write_text(USER_MODEL)
    return path


def test_names_outside_the_registry():
    assert is_external("torchvision:resnet18") and is_external("timm:resnet18") and is_external("a/b.py:Net")
    assert not is_external("mobilenet_v1") and not is_external("b.py") and not is_external("x:y")
    assert source_label("torchvision:resnet18") == "torchvision-resnet18"
    assert source_label("/some dir/mymodel.py:Tiny") == "mymodel-Tiny"
    assert source_label("cnn") == "cnn"


def test_a_file_model_gets_a_card_that_rebuilds_it(user_file):
    model = create(f"{user_file}:TinyResNet", num_classes=7, in_chans=1, input_size=20, width=6)
    card = card_of(model)
    assert card.build_args["name"] == f"{user_file.resolve()}:TinyResNet"
    assert card.build_args["width"] == 6 and card.num_classes == 7 and card.input_shape == (1, 20, 20)
    again = rebuild(card)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert again(torch.zeros(2, 1, 20, 20)).shape == (2, 7)


def test_width_arg_scales_the_models_own_argument(user_file):
    model = create(f"{user_file}:TinyResNet", num_classes=7, input_size=16, width=8, width_arg="width",
                   width_mult=0.5)
    assert model.stem[0].out_channels == 4
    assert model.card.build_args["width"] == 8 and model.card.build_args["width_mult"] == 0.5
    assert rebuild(model.card).stem[0].out_channels == 4
    with pytest.raises(ValueError, match="no width multiplier"):
        create(f"{user_file}:TinyResNet", num_classes=7, input_size=16, width_mult=0.5)
    with pytest.raises(ValueError, match="no depth multiplier"):
        create(f"{user_file}:TinyResNet", num_classes=7, input_size=16, depth_mult=0.5)


def test_pruned_widths_rebuild_a_file_model(user_file):
    from compress.prune import PruneConfig, prune

    model = create(f"{user_file}:TinyResNet", num_classes=7, input_size=16, width=8)
    pruned = prune(model, PruneConfig(ratio=0.5), input_shape=(1, 16, 16)).model
    again = rebuild(card_of(pruned))
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}


@pytest.mark.parametrize("name, match", [
    ("{f}:Nope", r"has no class or function 'Nope'; it has: .*TinyResNet"),
    ("{d}/missing.py:Net", "does not exist"),
    ("{f}:not_a_module", "returned int, not a torch.nn.Module"),
    ("{f}:raises", "building it raised RuntimeError: bad config"),
    ("{f}:small", r"gives output shape \(1, 3\), not \(1, 7\)"),
    ("{f}:NeedsBig", "forward fails on a 1x16x16 input"),
    ("{d}/notpython.py:Net", "notpython.py:1: not valid Python"),
])
def test_bad_model_sources_say_what_is_wrong(user_file, name, match):
    (user_file.parent / "notpython.py").write_text("def broken(:\n")
    with pytest.raises(ValueError, match=match):
        create(name.format(f=user_file, d=user_file.parent), num_classes=7, input_size=16)


def test_a_file_that_raises_on_import(tmp_path):
    bad = tmp_path / "boom.py"
    bad.write_text("raise ImportError('no such thing')\n")
    with pytest.raises(ValueError, match=r"boom.py: importing it raised ImportError: no such thing"):
        create(f"{bad}:Net", num_classes=7, input_size=16)


def test_zoo_names_need_their_package():
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(ValueError, match="needs torchvision"):
            create("torchvision:resnet18", num_classes=10, in_chans=3, input_size=32)


@pytest.mark.torchvision
@pytest.mark.parametrize("name", ["torchvision:mobilenet_v3_small", "torchvision:vit_b_16", "torchvision:googlenet",
                                  "timm:resnet18", "timm:vit_tiny_patch16_224"])
def test_zoo_models_build_for_the_data(name):
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")
    model = create(name, num_classes=7, in_chans=1, input_size=32)
    assert model.eval()(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
    again = rebuild(card_of(model))
    assert [v.shape for v in again.state_dict().values()] == [v.shape for v in model.state_dict().values()]


@pytest.mark.torchvision
@pytest.mark.parametrize("name, match", [("torchvision:nope", "unknown torchvision model 'nope'"),
                                         ("timm:nope_net", "unknown timm model 'nope_net'")])
def test_unknown_zoo_names(name, match):
    pytest.importorskip("torchvision")
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=match):
        create(name, num_classes=7, in_chans=3, input_size=32)
