"""Trained quantization: straight-through fake quantization and centroid training through a WeightTransform."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.quant.qat import WeightTransform, fake_quant_linear


def test_ste_passes_gradients_through_rounding():
    w = torch.randn(8, 16, requires_grad=True)
    out = fake_quant_linear(w, 4)
    out.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))
    assert torch.unique(out.detach()[0]).numel() <= 15


def test_centroid_gradients_are_summed_and_masks_hold():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    mask = torch.rand(32, 64) < 0.3
    t = WeightTransform(model, masks={"0.weight": mask}, codecs={"0.weight": "kmeans2", "2.weight": "int4"})
    assert (model[0].weight[~mask] == 0).all()
    w = t.weights()
    (w["0.weight"] * 3).sum().backward()
    counts = torch.bincount(t.indices["0.weight"], minlength=4).float()
    assert torch.allclose(t.codebooks["0.weight"].grad, 3 * counts)
    ids = {id(p) for p in t.trainable()}
    assert id(model[0].weight) not in ids and id(t.codebooks["0.weight"]) in ids and id(model[2].weight) in ids
    with torch.no_grad():
        t.codebooks["0.weight"].add_(0.1)
    t.materialize()
    assert (model[0].weight[~mask] == 0).all()
    assert torch.unique(model[0].weight[mask]).numel() <= 4
    with pytest.raises(ValueError, match="lacks"):
        WeightTransform(model, codecs={"9.weight": "int4"})
