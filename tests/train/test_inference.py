"""The one batched-inference loop: a stacked model's members evaluated through it as each alone would be."""

import pytest
import torch

from compress import data, models
from compress.data.bundle import Split
from compress.train import evaluate
from compress.train.inference import evaluate_members
from compress.train.stack import stack_models


def test_members_of_a_stacked_model_score_as_each_alone(randomize_batchnorm):
    bundle = data.synthetic(90, num_classes=3, size=12, seed=2)
    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(randomize_batchnorm(models.create("cnn", width_mult=0.25, num_classes=3, input_size=12)).eval())
    stacked = stack_models(members).eval()
    split = bundle.split("test")
    losses, accs = evaluate_members(stacked, split, bundle.normalize, 3, batch_size=7)   # several batches
    for member, loss, acc in zip(members, losses, accs):
        alone = evaluate(member, split, normalizer=bundle.normalize, batch_size=7)
        assert acc == pytest.approx(alone["acc"], abs=1e-7) and loss == pytest.approx(alone["loss"], rel=1e-5)
    assert len(set(losses)) == 3                       # each member's own outputs, not member 0's three times
    with pytest.raises(ValueError, match="labeled"):
        evaluate_members(stacked, Split(split.x[:0], split.y[:0]), bundle.normalize, 3)
