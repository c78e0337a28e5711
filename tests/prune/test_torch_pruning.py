"""Cross-check against Torch-Pruning (DepGraph) where it is installed (``pip install "compress[bench]"``): at half the
channels with the same ratio per layer, both find the same couplings and remove the same number of channels from
each, so the pruned models have the same shapes; at 0.3 (odd kept counts) every tensor of ours is equal or smaller.
(Which channels go may differ: Torch-Pruning's group L1 also sums BatchNorm scales and averages over the group.)"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from compress import models
from compress.prune import prune

pytestmark = pytest.mark.torchvision   # torch-pruning is installed in the zoo leg's environment (tests/zoo-leg)
tp = pytest.importorskip("torch_pruning")


def _theirs(model: nn.Module, shape, ratio: float) -> nn.Module:
    model = copy.deepcopy(model).eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    pruner = tp.pruner.MetaPruner(model, torch.randn(1, *shape), importance=tp.importance.GroupMagnitudeImportance(p=1),
                                  pruning_ratio=ratio, ignored_layers=[last])
    pruner.step()
    return model


@pytest.mark.parametrize("name,kw", [("mobilenet_v2", {"width_mult": 0.5, "channel_divisor": 1}),
                                     ("mobilenet_v1", {"width_mult": 0.5}), ("fer_hw3_cnn", {"width_mult": 0.25}),
                                     ("mlp", {}), ("fer_hw8_torch", {}), ("fer_hw8_keras", {}),
                                     ("cnn", {"width_mult": 0.5})])
@pytest.mark.parametrize("ratio", [0.5, 0.3])
def test_same_or_smaller_shapes_than_torch_pruning(name, kw, ratio):
    torch.manual_seed(0)
    model = models.create(name, **kw).eval()
    ours = {k: v.shape for k, v in prune(model, ratio=ratio, importance="l1").model.state_dict().items()}
    theirs = {k: v.shape for k, v in _theirs(model, model.card.input_shape, ratio).state_dict().items()}
    assert ours == theirs    # the same count, floor(width * (1 - ratio)), per layer on both sides: never larger
