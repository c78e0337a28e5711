"""Artifacts of models compress cannot rebuild from a card: the architecture stored as a program (torch.export JSON),
rebuilt without the model's code, pruned models included; weights-only files as before; one-line refusals."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from compress import models
from compress.export import artifact as A
from compress.export import load_program, save_program
from compress.export.program import export_program
from compress.models.card import CardedModel, ModelCard
from compress.prune import prune
from compress.quant import CodecConfig, quantize

X = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))


class Net(nn.Module):
    """A small ResNet-like model defined only in this test file: a loaded artifact must not need it."""

    def __init__(self, width: int = 8, classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1, groups=width))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean((2, 3)))


class External(CardedModel):
    """What compress.models.create makes of a torchvision/timm/file model: a module with a card no registered
    family rebuilds."""

    def __init__(self):
        super().__init__()
        self.net = Net()
        self.card = ModelCard({"name": "torchvision:tiny_test_net", "num_classes": 3, "in_chans": 1,
                               "input_size": 16})

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def net(randomize_batchnorm):
    torch.manual_seed(0)
    return randomize_batchnorm(Net())


def _outputs(model, x=X):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("codec,fold,fmt", [("fp32", False, "npz"), ("fp16", True, "npz"), ("int8", True, "pt"),
                                            ("kmeans4", False, "npz"), ("int8-tensor", False, "pt")])
def test_any_model_rebuilds_without_its_code(tmp_path, net, codec, fold, fmt):
    path = A.save(net, tmp_path / f"m.{fmt}", codec=codec, fold_bn=fold, input_shape=(1, 16, 16))
    manifest, _ = A.read(path)
    assert manifest["model"]["kind"] == "program" and manifest["model"]["class"].endswith("Net")
    loaded = A.load(path)
    reference = quantize(net, CodecConfig(codec, fold_bn=fold)).model
    torch.testing.assert_close(_outputs(loaded), _outputs(reference), rtol=0, atol=1e-5)
    assert not loaded.training
    assert sorted(loaded.state_dict()) == sorted(reference.state_dict())


def test_fp32_program_is_exact_and_any_batch_runs(tmp_path, net):
    loaded = A.load(A.save(net, tmp_path / "m.npz", codec="fp32", input_shape=(1, 16, 16)))
    for batch in (1, 2, 5):
        assert torch.equal(_outputs(loaded, X[:batch]), _outputs(net, X[:batch]))


def test_external_card_stores_a_program_and_keeps_the_card(tmp_path, randomize_batchnorm):
    torch.manual_seed(0)
    model = randomize_batchnorm(External())
    path = A.save(model, tmp_path / "ext.npz", codec="fp16", fold_bn=True)   # input shape from the card
    manifest, _ = A.read(path)
    assert manifest["model"]["kind"] == "program"
    assert manifest["model"]["card"]["build_args"]["name"] == "torchvision:tiny_test_net"
    loaded = A.load(path)
    assert loaded.card.name == "torchvision:tiny_test_net" and loaded.card.bn_folded == 2
    torch.testing.assert_close(_outputs(loaded), _outputs(quantize(model, CodecConfig("fp16", fold_bn=True)).model),
                               rtol=0, atol=1e-5)


def test_pruned_model_rebuilds_at_its_new_widths(tmp_path, net):
    pruned = prune(net, ratio=0.5, input_shape=(1, 16, 16)).model
    assert pruned.stem[0].out_channels < net.stem[0].out_channels
    loaded = A.load(A.save(pruned, tmp_path / "p.npz", codec="fp32", input_shape=(1, 16, 16)))
    assert loaded.state_dict()["stem.0.weight"].shape == pruned.stem[0].weight.shape
    assert torch.equal(_outputs(loaded), _outputs(pruned))


def test_registered_families_keep_their_card_unless_asked(tmp_path):
    model = models.create("cnn", channels=[8, 16], num_classes=3, input_size=16)
    carded = A.read(A.save(model, tmp_path / "c.npz"))[0]["model"]
    assert carded == {"kind": "compress.models", "card": model.card.to_dict()}
    path = A.save(model, tmp_path / "p.npz", program=True, codec="fp32")
    assert A.read(path)[0]["model"]["kind"] == "program"
    assert torch.equal(_outputs(A.load(path)), _outputs(model.eval()))


def test_weights_only_as_before(tmp_path, net):
    path = A.save(net, tmp_path / "w.npz", input_shape=(1, 16, 16), program=False)
    assert A.read(path)[0]["model"]["kind"] == "state_dict"
    with pytest.raises(A.ArtifactError, match=r"model=<instance>"):
        A.load(path)
    with pytest.raises(ValueError, match="input_shape"):
        A.save(net, tmp_path / "x.npz", program=True)


def test_a_program_artifact_also_loads_into_an_instance(tmp_path, net):
    path = A.save(net, tmp_path / "m.npz", codec="fp16", input_shape=(1, 16, 16))
    mine = A.load(path, model=Net())
    assert type(mine) is Net
    torch.testing.assert_close(_outputs(mine), _outputs(A.load(path)), rtol=0, atol=1e-5)


def test_loaded_program_is_for_inference_only(tmp_path, net):
    loaded = A.load(A.save(net, tmp_path / "m.npz", input_shape=(1, 16, 16)))
    loaded.eval()
    with pytest.raises(ValueError, match="eval mode only.*model=instance"):
        loaded.train()


def test_a_loaded_program_saves_again(tmp_path, net):
    first = A.load(A.save(net, tmp_path / "a.npz", codec="fp32", input_shape=(1, 16, 16)))
    second = A.load(A.save(first, tmp_path / "b.npz", codec="fp32", input_shape=(1, 16, 16)))
    assert torch.equal(_outputs(second), _outputs(net))


class Constants(nn.Module):
    """Non-persistent buffers and tensors made in forward: not in the state_dict, stored exactly."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("scale", torch.tensor([1.0 / 3.0], dtype=torch.float64), persistent=False)
        self.register_buffer("index", torch.tensor([2, 0, 1]), persistent=False)

    def forward(self, x):
        y = self.fc(x)[:, self.index] * self.scale.float()
        return y + torch.tensor([0.25, 0.5, 0.75])


def test_constants_are_stored_exactly_whatever_the_codec(tmp_path):
    torch.manual_seed(0)
    model = Constants().eval()
    path = A.save(model, tmp_path / "c.npz", codec="int8", input_shape=(4,))
    manifest, encoded = A.read(path)
    assert encoded["scale"].kind == "raw" and encoded["scale"].arrays["data"].dtype == torch.float64
    x = torch.randn(6, 4)
    torch.testing.assert_close(_outputs(A.load(path), x), _outputs(quantize(model, CodecConfig("int8")).model, x),
                               rtol=0, atol=1e-5)


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_a_model_torch_cannot_export_gets_one_line(tmp_path, capsys):
    with pytest.raises(ValueError) as info:
        A.save(DataDependent(), tmp_path / "d.npz", input_shape=(4,))
    message = str(info.value)
    assert "\n" not in message and "DataDependent" in message and "program=False" in message
    assert "model=instance" in message
    assert capsys.readouterr().err == ""         # torch's graph dump is not printed
    assert not (tmp_path / "d.npz").exists()
    A.save(DataDependent(), tmp_path / "d.npz", input_shape=(4,), program=False)   # the way out works


class PinnedBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(x.reshape(1, 8))


def test_a_pinned_batch_is_exported_for_batches_of_one_with_a_warning(tmp_path):
    torch.manual_seed(0)
    model = PinnedBatch().eval()
    with pytest.warns(UserWarning, match="batches of 1"):
        path = A.save(model, tmp_path / "b.npz", codec="fp32", input_shape=(8,))
    assert A.read(path)[0]["model"]["program"]["batch_size"] == 1
    x = torch.randn(1, 8)
    assert torch.equal(_outputs(A.load(path), x), _outputs(model, x))


def test_class_names_must_name_every_output(tmp_path, net):
    with pytest.raises(ValueError, match="lists 2 classes but .* has 3 outputs"):
        A.save(net, tmp_path / "n.npz", input_shape=(1, 16, 16), class_names=["a", "b"])


def test_program_files_beside_a_checkpoint(tmp_path, net):
    """save_program/load_program: what a run folder can keep beside checkpoint.pt (weights read with
    weights_only=True)."""
    path = save_program(net, tmp_path / "program.json", input_shape=(1, 16, 16))
    doc = json.loads(path.read_text())
    assert doc["format"] == "compress.program/1" and "state_dict" not in path.read_text()
    torch.save(net.state_dict(), tmp_path / "checkpoint.pt")
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert torch.equal(_outputs(load_program(path, state)), _outputs(net))
    constants = Constants().eval()
    path = save_program(constants, tmp_path / "c.json", input_shape=(4,))
    x = torch.randn(3, 4)
    assert torch.equal(_outputs(load_program(path.read_bytes(), constants.state_dict()), x), _outputs(constants, x))
    with pytest.raises(A.ArtifactError, match="not stored"):
        load_program(tmp_path / "program.json", {})


def test_program_json_holds_no_paths_or_pickles(net):
    program = export_program(net, (1, 16, 16))
    text = json.dumps(program.spec)
    assert __file__ not in text and "stack_trace" not in text
    assert program.spec["batch_size"] is None and program.note is None
