"""compress.models.scaling policies: width only, compound depth and width, min channels, resolution, latency."""

import math

import pytest

from compress.budget import Budget
from compress.models import policies, scaling

KW = dict(in_chans=1, input_size=28, num_classes=10, channel_divisor=1)


@pytest.mark.parametrize("policy", scaling.POLICIES)
@pytest.mark.parametrize("family", ["mobilenet_v1", "cnn", "mlp"])
def test_every_policy_meets_the_budget(family, policy):
    f = scaling.scale_to(family, Budget(max_params=20_000), policy=policy, **KW)
    assert f.param_count <= 20_000 and f.policy == policy
    assert sum(p.numel() for p in f.create().parameters()) == f.param_count
    assert f.build_args["depth_mult"] == f.depth_mult


def test_compound_follows_efficientnet_and_trades_blocks_for_channels():
    width = scaling.scale_to("mobilenet_v1", Budget(max_params=20_000), policy="width", **KW)
    compound = scaling.scale_to("mobilenet_v1", Budget(max_params=20_000), policy="compound", **KW)
    a, b = policies.EFFICIENTNET["alpha"], policies.EFFICIENTNET["beta"]
    # the depth is EfficientNet's a ** phi at some phi; the width is then b ** phi or more (filled to the budget)
    phi = math.log(compound.depth_mult) / math.log(a)
    assert compound.width_mult >= b ** phi * (1 - 1e-9) and compound.param_count > 0.95 * 20_000
    ws, cs = scaling.architecture_shape(width.build_args), scaling.architecture_shape(compound.build_args)
    assert cs["layers"] < ws["layers"] == 28 and cs["narrowest"] >= 8 > ws["narrowest"]
    # whole stages dropped: the widest layer is a few stages from the stem, not 32 times its width
    assert cs["widest"] <= 8 * cs["narrowest"]


def test_compound_fills_the_budget_at_its_depth():
    for family in ("mobilenet_v1", "cnn", "mlp"):
        f = scaling.scale_to(family, Budget(max_params=80_000), policy="compound", **KW)
        wider = scaling.scale_to(family, Budget(max_params=80_000), policy="width", depth_mult=f.depth_mult, **KW)
        assert f.param_count == wider.param_count and f.width_mult == pytest.approx(wider.width_mult)


def test_min_channels_keeps_the_deepest_wide_enough_model():
    f = scaling.scale_to("cnn", Budget(max_params=20_000), policy="min_channels", min_channels=6, **KW)
    shape = scaling.architecture_shape(f.build_args)
    assert shape["narrowest"] >= 6
    # no deeper level keeps 6 channels within the budget
    for d in policies.depth_levels("cnn", KW):
        if d > f.depth_mult:
            g = scaling.scale_to("cnn", Budget(max_params=20_000), policy="width", depth_mult=d, **KW)
            assert scaling.architecture_shape(g.build_args)["narrowest"] < 6
    assert policies.depth_levels("cnn", KW) == [n / 8 for n in range(8, 0, -1)]     # 4 stages of 2 convs
    assert policies.depth_levels("mlp", KW) == [1.0, 2 / 3, 1 / 3]


def test_compound_res_lowers_resolution_within_the_data():
    f = scaling.scale_to("mlp", Budget(max_params=20_000), policy="compound_res", **KW)
    assert 14 <= f.input_size < 28 and f.param_count <= 20_000
    big = scaling.scale_to("mlp", Budget(max_params=5_000_000), policy="compound_res", **KW)
    assert big.input_size == 28                                   # never above the data's own size


def fake_latency(model, input_shape, *, runtime, batch_size, threads):
    """A stand-in timer: 1 ms per 10,000 parameters and image (monotone in the width, like a real one)."""
    assert runtime == "onnxruntime" and threads == 1
    return batch_size * sum(p.numel() for p in model.parameters()) / 10_000


def test_latency_budget_uses_the_latency_function_with_the_budgets_runtime():
    budget = Budget(max_latency_ms=2.0, runtime="onnxruntime", batch_size=2)
    f = scaling.scale_to("mlp", budget, latency=fake_latency, **KW)
    assert f.latency_ms == pytest.approx(2 * f.param_count / 10_000) and f.latency_ms <= 2.0
    assert f.param_count > 0.95 * 10_000                           # the largest model: fills the budget
    with pytest.raises(ValueError, match="impossible budget.*ms"):
        scaling.scale_to("mobilenet_v1", Budget(max_latency_ms=1e-4, runtime="onnxruntime"), latency=fake_latency,
                         **KW)
    with pytest.raises(ValueError, match="latency="):
        scaling.scale_to("mlp", budget, **KW)


def test_latency_budget_on_this_machine():
    """The real timer (compress.bench.latency_ms), passed in: models/ never imports bench."""
    from compress.bench import latency_ms

    f = scaling.scale_to("mlp", Budget(max_latency_ms=5.0), latency=latency_ms, **KW)
    assert f.latency_ms is not None and 0 < f.latency_ms <= 5.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(policy="depth"), "unknown policy"),
    (dict(policy="compound", depth_mult=0.5), "depth_mult"),
    (dict(min_channels=0), "min_channels"),
])
def test_bad_policy_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaling.scale_to("cnn", Budget(max_params=1e5), **kwargs)


def test_cli_scale_policy(capsys):
    from compress.cli import main

    assert main(["scale", "cnn", "--max-params", "20k", "--policy", "compound", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out
    assert "policy compound" in out and "depth_mult" in out and "weight layers" in out
    assert main(["scale", "cnn", "--max-params", "20k", "--min-channels", "0"]) == 2
