"""compress.budget: one Budget with one meaning per number, one function measuring quantities, one bisection."""

import io

import pytest
import torch
from torch import nn

from compress.budget import Boundary, Budget, bisect, quantities, state_dict_bytes


def _model():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_quantities_have_one_meaning_each():
    model = _model()
    got = quantities(model, Budget(), (1, 8, 8), names=["param_count", "macs", "size_bytes"])
    assert got["param_count"] == 4 * 9 + 4 + 144 * 3 + 3
    assert got["macs"] == 4 * 9 * 36 + 144 * 3                     # conv + linear multiply-accumulates, batch 1
    half = {k: v.half() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(half, buf)
    assert got["size_bytes"] == buf.getbuffer().nbytes            # the default format: a float16 torch.save
    assert got["latency_ms"] is None
    assert state_dict_bytes(model, "pt-fp32") > got["size_bytes"]


def test_quantities_take_what_needs_a_higher_layer_as_functions():
    model = _model()
    calls = []

    def timer(m, shape, *, runtime, batch_size, threads):
        calls.append((shape, runtime, batch_size, threads))
        return 1.5

    budget = Budget(max_bytes=10_000, file_format="npz:int8+fold", max_latency_ms=2, runtime="ort", batch_size=4)
    got = quantities(model, budget, (1, 8, 8), file_bytes=lambda m: 1234, latency=timer)
    assert got["size_bytes"] == 1234 and got["latency_ms"] == 1.5 and got["param_count"] is None
    assert calls == [((1, 8, 8), "ort", 4, 1)]
    assert budget.holds(got) and budget.over({**got, "latency_ms": 3.0}) == ["latency_ms"]
    with pytest.raises(ValueError, match="file_bytes="):
        quantities(model, budget, (1, 8, 8), latency=timer)
    with pytest.raises(ValueError, match="latency="):
        quantities(model, budget, (1, 8, 8), file_bytes=lambda m: 1)
    with pytest.raises(ValueError, match="unknown quantity"):
        quantities(model, budget, (1, 8, 8), names=["flops"])


def test_budget_describes_scales_and_round_trips():
    budget = Budget(max_params=20_000, max_latency_ms=2.0, threads=2)
    assert budget.limits == {"param_count": 20_000, "latency_ms": 2.0}
    assert budget.describe() == "params<=20,000, latency<=2.000 (eager, batch 1, 2 threads)"
    half = budget.scaled({"param_count": 100_000, "latency_ms": 4.0}, 0.5)
    assert half.max_params == 60_000 and half.max_latency_ms == 3.0 and half.threads == 2
    assert Budget.from_dict(budget.to_dict()) == budget
    with pytest.raises(ValueError, match="unknown"):
        Budget.from_dict({"max_params": 5, "max_flops": 3})
    with pytest.raises(ValueError, match="at least one"):
        Budget(runtime="onnxruntime").require_limit("search")
    assert Budget().holds({"param_count": 10**9})                  # no limit: anything holds


def test_bisect_finds_the_boundary_of_a_monotone_knob_in_either_direction():
    seen = []

    def fits(x):
        seen.append(x)
        return x <= 0.3, f"model at {x}"

    edge = bisect(fits, 0.0, 1.0, steps=10)
    assert isinstance(edge, Boundary) and edge.good <= 0.3 < edge.bad and edge.bad - edge.good == 2 ** -10
    assert edge.good_value == f"model at {edge.good}" and len(seen) == 10
    down = bisect(lambda r: (r >= 0.7, r), 1.0, 0.0, steps=12)       # the least pruning that meets a target
    assert 0.7 <= down.good < 0.7 + 2 ** -12 and down.bad < 0.7
    grid = bisect(lambda i: (i >= 5, i), 14, 0)                          # an integer knob: indices of a grid
    assert (grid.good, grid.bad) == (5, 4)
    with pytest.raises(ValueError, match="steps"):
        bisect(fits, 0.0, 1.0, steps=-1)
