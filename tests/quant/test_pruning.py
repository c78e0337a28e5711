"""Magnitude masks, the AGP schedule, STE / centroid training, the knapsack allocation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.quant.allocate import Option, allocate, layer_options
from compress.quant.pruning import agp_sparsity, lamp_scores, magnitude_masks, prunable, sparsity_of
from compress.quant.qat import WeightTransform, fake_quant_linear


def test_agp_schedule_is_cubic_and_monotone():
    values = [agp_sparsity(t, 100, 0.9) for t in range(0, 121, 10)]
    assert values[0] == 0 and values[10:] == [0.9, 0.9, 0.9]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert agp_sparsity(50, 100, 0.8) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    with pytest.raises(ValueError):
        agp_sparsity(0, 10, 1.0)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_masks_prune_the_exact_count(scope):
    g = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(100, 50, generator=g), "b": 10 * torch.randn(30, 30, generator=g)}
    masks = magnitude_masks(weights, 0.8, scope=scope)
    assert sum(int((~m).sum()) for m in masks.values()) == pytest.approx(0.8 * 5900, abs=2)
    for n, m in masks.items():   # the kept weights are the largest of their layer
        assert weights[n][m].abs().min() >= weights[n][~m].abs().max()
        assert m.any()
    with pytest.raises(ValueError):
        magnitude_masks(weights, 0.5, scope="channel")


def test_lamp_is_scale_invariant_per_layer():
    w = torch.randn(200, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(lamp_scores(w), lamp_scores(1000 * w))
    assert lamp_scores(w)[w.abs().argmax()] == 1


def test_prunable_and_sparsity_of():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 512, 1), nn.Flatten(), nn.Linear(10, 200))
    assert prunable(model) == ["1.weight", "3.weight"]
    assert sparsity_of({"x": torch.tensor([0.0, 1.0, 0.0, 2.0])}) == 0.5


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


def test_knapsack_is_optimal_on_a_small_case():
    options = {"a": [Option("int8", 100, 0.0), Option("int4", 50, 0.3), Option("kmeans2", 25, 1.0)],
               "b": [Option("int8", 100, 0.0), Option("int4", 50, 0.05), Option("kmeans2", 25, 0.2)]}
    chosen = allocate(options, 150)
    assert {n: o.codec for n, o in chosen.items()} == {"a": "int8", "b": "int4"}
    chosen = allocate(options, 80)
    assert {n: o.codec for n, o in chosen.items()} == {"a": "int4", "b": "kmeans2"}
    with pytest.raises(ValueError, match="smallest"):
        allocate(options, 40)


def test_layer_options_measure_and_restore():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 4))
    x = torch.randn(32, 64)
    before = model[0].weight.detach().clone()
    opts = layer_options(model, ["0.weight"], ["int8", "kmeans1"], lambda m: float(m(x).square().mean()))
    assert torch.equal(model[0].weight, before)
    sizes = {o.codec: o.size_bytes for o in opts["0.weight"]}
    assert sizes["kmeans1"] < sizes["int8"]
