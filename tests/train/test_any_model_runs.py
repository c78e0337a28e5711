"""Run folders of the user's own models: usable by load_run (and so every CLI command) without the model."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch
from torch import nn

from compress import data
from compress.train import TrainConfig, fit, load_run

FAST = dict(epochs=1, batch_size=64, augment=False, threads=1)

SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, width=6, num_classes=3, in_chans=1):
            super().__init__()
            self.conv = nn.Conv2d(in_chans, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.fc = nn.Linear(width, num_classes)

        def forward(self, x):
            return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
''')


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usernet.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("usernet")
    yield module
    sys.modules.pop("usernet", None)


def test_a_default_built_user_model_gets_a_card(tmp_path, user_module):
    bundle = data.synthetic(200, num_classes=3, size=12, seed=1)
    run = fit(user_module.Net(), bundle, TrainConfig(**FAST), out=tmp_path / "r", progress=False)
    assert run.card is not None and run.card.build_args["name"].endswith("usernet.py:Net")
    loaded = load_run(tmp_path / "r")          # no model passed: rebuilt from the user's file
    x = torch.rand(4, 1, 12, 12)
    assert torch.equal(loaded.model(x), run.model.eval()(x))


def test_a_user_model_built_with_arguments_keeps_no_card(tmp_path, user_module):
    bundle = data.synthetic(200, num_classes=3, size=12, seed=1)
    run = fit(user_module.Net(width=5), bundle, TrainConfig(**FAST), out=tmp_path / "r", progress=False)
    assert run.card is None     # Net() has other shapes: the arguments cannot be recovered
    with pytest.raises(ValueError, match=r"--model PATH.py:NAME --model-args"):
        load_run(tmp_path / "r")


def test_a_class_defined_in_a_function_keeps_no_card(tmp_path):
    class Local(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(144, 3)

        def forward(self, x):
            return self.fc(x.flatten(1))

    run = fit(Local(), data.synthetic(200, num_classes=3, size=12, seed=1), TrainConfig(**FAST), progress=False)
    assert run.card is None
