import pytest
import torch

from compress import models
from compress.budget import Budget
from compress.models import scaling


def params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name, budget", [("mobilenet_v1", 100_000), ("cnn", 50_000), ("mlp", 300_000),
                                          ("mobilenet_v2", 600_000)])
def test_scale_to_params_is_within_budget_and_maximal(name, budget):
    f = scaling.scale_to(name, Budget(max_params=budget))
    model = f.create()
    assert params(model) == f.param_count <= budget
    # a slightly wider model is over budget: fit found the last step
    wider = scaling.at_width(name, f.width_mult * 1.01)
    assert wider.param_count > budget or wider.param_count == f.param_count


def test_scale_to_macs_budget():
    f = scaling.scale_to("mobilenet_v1", Budget(max_macs=2_000_000))
    assert 0 < f.macs <= 2_000_000
    assert scaling.at_width("mobilenet_v1", f.width_mult * 1.05).macs > 2_000_000


def test_scale_to_bytes_budget_checked_on_written_bytes(tmp_path):
    f = scaling.scale_to("mobilenet_v1", Budget(max_bytes=225_000))     # the default format: pt-fp16
    model = f.create()
    # torch.save names the zip's folder after the file's stem; in-memory saves use "archive".
    path = tmp_path / "archive.pt"
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)
    assert path.stat().st_size == f.size_bytes <= 225_000
    fp32 = scaling.scale_to("mobilenet_v1", Budget(max_bytes=225_000, file_format="pt-fp32"))
    assert fp32.param_count < f.param_count          # four bytes a weight: about half the parameters
    npz = scaling.scale_to("mobilenet_v1", Budget(max_bytes=225_000, file_format="npz-fp16"))
    assert npz.size_bytes <= 225_000


def test_scale_to_custom_file_bytes_and_options():
    f = scaling.scale_to("cnn", Budget(max_bytes=40_000, file_format="params"), file_bytes=params,
                         channels=(16, 32))
    assert f.size_bytes == f.param_count <= 40_000 and f.build_args["channels"] == [16, 32]
    with pytest.raises(ValueError, match="'params' is not a state-dict format"):
        scaling.scale_to("cnn", Budget(max_bytes=40_000, file_format="params"))


def test_scale_to_impossible_budget_names_smallest():
    with pytest.raises(ValueError, match=r"smallest model .* 18,695 params"):
        scaling.scale_to("mlp", Budget(max_params=5_000))


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_params=0), "max_params"), (dict(max_params=float("nan")), "max_params"),
    (dict(max_bytes=1e5, file_format=""), "file_format"), (dict(max_latency_ms=2, batch_size=0), "batch_size"),
])
def test_budget_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


def test_scale_to_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        scaling.scale_to("cnn", Budget())            # meanings only, no limit
    with pytest.raises(ValueError, match="width_mult"):
        scaling.scale_to("cnn", Budget(max_params=1e5), width_mult=2)
    with pytest.raises(TypeError, match="Budget"):
        scaling.scale_to("cnn", {"max_params": 1e5})
    with pytest.raises(ValueError, match="unknown model"):
        scaling.scale_to("resnet", Budget(max_params=1e5))


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
