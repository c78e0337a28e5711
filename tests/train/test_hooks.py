"""The training loop's weight-transform hook: the optimizer trains the hook's tensors, the forward pass sees its
weights, it hears of every step and is materialized once; the last weights are kept; fractional epochs."""

import math

import pytest
import torch
from torch import nn

from compress import data
from compress.train import TrainConfig, fit
from compress.train.hooks import WeightTransformHook


class Gain:
    """Trains one scalar: the classifier's weight is ``gain * w0`` (w0 frozen), written back by materialize."""

    def __init__(self, model):
        self.model, self.w0 = model, model[1].weight.detach().clone()
        self.gain = nn.Parameter(torch.ones(()))
        self.steps, self.materialized = [], 0

    def trainable(self):
        return [self.gain, self.model[1].bias]

    def weights(self):
        return {"1.weight": self.gain * self.w0}

    def after_step(self, step, total_steps):
        self.steps.append((step, total_steps))

    def materialize(self):
        self.materialized += 1
        with torch.no_grad():
            self.model[1].weight.copy_(self.gain * self.w0)


@pytest.fixture(scope="module")
def bundle():
    return data.synthetic(200, num_classes=3, size=12, seed=1)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 3))


def test_the_hook_trains_its_tensors_and_the_last_weights_are_kept(bundle):
    model = _model()
    hook = Gain(model)
    assert isinstance(hook, WeightTransformHook)
    config = TrainConfig(epochs=1.5, batch_size=32, lr=0.05, bn_recalibrate=0, device="cpu", augment=False)
    run = fit(model, bundle, config, weight_transform=hook, progress=False)
    steps_per_epoch = len(bundle.train) // 32 + (len(bundle.train) % 32 >= 2)
    total = math.ceil(1.5 * steps_per_epoch)
    assert hook.steps == [(s, total) for s in range(1, total + 1)] and hook.materialized == 1
    assert hook.gain.item() != 1.0                           # the optimizer trained the hook's tensor ...
    assert torch.equal(model[1].weight, (hook.gain * hook.w0).detach())   # ... and the model holds what it trained
    assert [r["epoch"] for r in run.history] == [1, 2] and "val_acc" not in run.history[0]   # no validation
    assert run.metrics["best_epoch"] == 2 and run.metrics["val_acc"] is not None   # last kept, then measured


def test_the_hook_refuses_what_reads_the_models_own_weights(bundle):
    for bad in (dict(ema_decay=0.9, bn_recalibrate=0), dict()):
        with pytest.raises(ValueError, match="ema_decay=None and bn_recalibrate=0"):
            fit(_model(), bundle, TrainConfig(epochs=1, **bad), weight_transform=Gain(_model()), progress=False)
    with pytest.raises(TypeError, match="WeightTransformHook"):
        fit(_model(), bundle, TrainConfig(epochs=1, bn_recalibrate=0), weight_transform=object(), progress=False)


def test_fractional_epochs_without_a_hook(bundle):
    run = fit(_model(), bundle, TrainConfig(epochs=0.5, batch_size=32, device="cpu"), progress=False)
    assert len(run.history) == 1 and run.metrics["epochs_run"] == 1
    for bad in (0, -1, float("inf"), True):
        with pytest.raises(ValueError, match="epochs"):
            TrainConfig(epochs=bad)
