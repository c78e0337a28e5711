"""Per-layer codec allocation: the knapsack within a byte budget, layer options measured and restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compress.quant.allocate import Option, allocate, layer_options


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
