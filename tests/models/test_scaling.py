import pytest
import torch

from compress import models
from compress.models import scaling


def params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, budget", [("mobilenet_v1", 100_000), ("cnn", 50_000), ("mlp", 300_000),
                                          ("mobilenet_v2", 600_000)])
def test_fit_params_is_within_budget_and_maximal(name, budget):
    f = scaling.fit(name, max_params=budget)
    model = f.create()
    assert params(model) == f.param_count <= budget
    # a slightly wider model is over budget: fit found the last step
    wider = scaling.at_width(name, f.width_mult * 1.01)
    assert wider.param_count > budget or wider.param_count == f.param_count


def test_fit_macs_budget():
    f = scaling.fit("mobilenet_v1", max_macs=2_000_000)
    assert 0 < f.macs <= 2_000_000
    assert scaling.at_width("mobilenet_v1", f.width_mult * 1.05).macs > 2_000_000


def test_fit_bytes_budget_checked_on_written_bytes(tmp_path):
    f = scaling.fit("mobilenet_v1", max_bytes=225_000, dtype=torch.float16)
    model = f.create()
    # torch.save names the zip's folder after the file's stem; in-memory saves use "archive".
    path = tmp_path / "archive.pt"
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)
    assert path.stat().st_size == f.size_bytes <= 225_000


def test_fit_custom_bytes_fn_and_options():
    f = scaling.fit("cnn", max_bytes=40_000, bytes_fn=lambda m: params(m), channels=(16, 32))
    assert f.size_bytes <= 40_000 and f.build_args["channels"] == [16, 32]


def test_fit_impossible_budget_names_smallest():
    with pytest.raises(ValueError, match=r"smallest model .* 18,695 params"):
        scaling.fit("mlp", max_params=5_000)


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "at least one"), (dict(max_params=0), "max_params"), (dict(max_params=float("nan")), "max_params"),
    (dict(max_bytes=1e5, dtype="int3"), "dtype"), (dict(max_params=1e5, width_mult=2), "width_mult"),
])
def test_fit_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scaling.fit("cnn", **kwargs)


def test_fit_unknown_family():
    with pytest.raises(ValueError, match="unknown model"):
        scaling.fit("resnet", max_params=1e5)


@pytest.mark.parametrize("ref_name, ref_width, family", [("cnn", 0.5, "mlp"), ("mobilenet_v1", 0.5, "cnn"),
                                                         ("cnn", 1.0, "mobilenet_v1")])
def test_match_within_five_percent(ref_name, ref_width, family):
    ref = models.create(ref_name, width_mult=ref_width)
    f = scaling.match(ref, family)
    assert abs(params(f.create()) - params(ref)) / params(ref) <= 0.05


def test_match_impossible_says_closest():
    with pytest.raises(ValueError, match="closest is 18,695"):
        scaling.match(5_000, "mlp")
    with pytest.raises(TypeError):
        scaling.match("big", "mlp")
