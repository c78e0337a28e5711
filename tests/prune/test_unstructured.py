"""Unstructured magnitude pruning: exact counts, LAMP scores, the AGP schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.prune.schedule import agp_sparsity
from compress.prune.unstructured import lamp_scores, magnitude_masks, prunable, sparsity_of


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
