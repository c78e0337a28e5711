"""compress.bench.registry and the catalog: a runtime is a record, and one added with ``register_runtime`` is
available, in ``compress bench``'s default set when its record says so, and a candidate for the fastest."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from compress import bench
from compress.bench import Runner, Runtime
from compress.cli import main

SHAPE = (1, 8, 8)


def cached(model, shape, **_) -> Runner:
    """A toy runtime: the model's output computed once per bound batch, returned by every call (far faster than
    any real runtime, and equal to eager's)."""
    def prepare(x):
        with torch.inference_mode():
            y = model(x)
        return (lambda: y), (lambda out: out)

    return Runner(prepare, ["toy: output cached per batch"], model)


@pytest.fixture()
def toy():
    """``toy_cached`` registered the short way (CPU, float, default) for one test."""
    bench.register_runtime("toy_cached", cached)
    yield "toy_cached"
    bench.unregister_runtime("toy_cached")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()


def test_a_registered_runtime_is_available_and_a_float_default(toy):
    record = bench.get_runtime(toy)
    assert (record.devices, record.kind, record.default, record.factory) == (("cpu",), "float", True, cached)
    assert toy in bench.available_runtimes("cpu") and toy in bench.runtime_names()
    assert toy in bench.default_runtimes("cpu", int8=False) and toy in bench.float_runtimes("cpu")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        bench.get_runtime(toy).require("cuda")


def test_a_registered_runtime_can_be_the_fastest(toy):
    ms, runtime = bench.fastest_latency(_model(), SHAPE, threads=1)   # every float runtime installed here
    assert runtime == toy and ms > 0


def test_compress_bench_runs_a_registered_runtime_in_its_default_set(toy, tmp_path, capsys):
    path = tmp_path / "m.npz"
    from compress import models
    from compress.export import artifact

    artifact.save(models.create("mlp", width_mult=0.125, num_classes=3, input_size=8), path, codec="fp16")
    out = tmp_path / "bench.json"
    assert main(["bench", str(path), "--batch-sizes", "1", "--threads", "1", "--warmup", "0", "--repeats", "3",
                 "--json", str(out)]) == 0
    ran = [r["runtime"] for r in json.loads(out.read_text())]
    assert ran == bench.default_runtimes("cpu", int8=False) and toy in ran   # fp16 artifact: no int8 runtimes
    printed = capsys.readouterr().out
    assert f"batch 1: {toy}" in printed                                      # and it is named the fastest


def test_a_record_says_what_is_left_out():
    records = [Runtime("toy_slow_build", cached, default=False), Runtime("toy_int8", cached, kind="int8"),
               Runtime("toy_gpu", cached, devices=("cuda",)), Runtime("toy_missing", cached, needs=("no_such_pkg_x",)),
               Runtime("toy_refused", cached, check=_refuse)]
    for record in records:
        bench.register_runtime(record)
    try:
        available = bench.available_runtimes("cpu")
        assert {"toy_slow_build", "toy_int8"} <= set(available)
        assert not {"toy_gpu", "toy_missing", "toy_refused"} & set(available)
        assert "toy_slow_build" not in bench.default_runtimes("cpu")
        assert "toy_int8" in bench.default_runtimes("cpu") and "toy_int8" not in bench.default_runtimes("cpu", int8=False)
        assert "toy_int8" not in bench.float_runtimes("cpu") and "toy_int8" in bench.runtime_names(kind="int8")
        with pytest.raises(ValueError, match="'toy_gpu' needs device 'cuda', not 'cpu'"):
            bench.check_runtime("toy_gpu", "cpu")
        with pytest.raises(ValueError, match="needs the no_such_pkg_x package, not installed here: pip install no_such"):
            bench.check_runtime("toy_missing", "cpu")
        with pytest.raises(ValueError, match="toy refuses this machine"):
            bench.check_runtime("toy_refused", "cpu")
    finally:
        for record in records:
            bench.unregister_runtime(record.name)
    assert not any(n.startswith("toy_") for n in bench.runtime_names())


def _refuse(device: str) -> None:
    raise ValueError("toy refuses this machine")


def test_the_built_in_records():
    kinds = {r.name: r.kind for r in bench.registered_runtimes()}
    assert {n for n, k in kinds.items() if k == "int8"} == {"onnxruntime_int8", "torch_int8", "openvino_int8"}
    assert {n for n, k in kinds.items() if k == "half"} == {"cuda_graph_fp16", "cuda_graph_bf16"}
    assert [r.name for r in bench.registered_runtimes() if not r.default] == ["compile"]
    assert all(bench.get_runtime(n).devices == ("cuda",) for n in ("cuda_graph", "cuda_graph_fp16", "cuda_graph_bf16"))
    assert "compile" not in bench.float_runtimes("cpu") and "cuda_graph" not in bench.available_runtimes("cpu")


def test_a_missing_package_takes_a_runtime_out_and_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)   # as if not installed
    assert not {"onnxruntime", "onnxruntime_int8", "openvino", "openvino_int8"} & set(bench.available_runtimes())
    with pytest.raises(ValueError, match=r"runtime 'onnxruntime' needs the onnxruntime package, not installed here: "
                                         r"pip install 'compress\[onnx\]'"):
        bench.check_runtime("onnxruntime")


def test_bad_records_and_registrations_raise():
    with pytest.raises(ValueError, match="already registered"):
        bench.register_runtime("eager", cached)
    with pytest.raises(ValueError, match="kind must be one of"):
        Runtime("toy_x", cached, kind="fp8")
    with pytest.raises(ValueError, match="devices must be some of"):
        Runtime("toy_x", cached, devices=("tpu",))
    with pytest.raises(ValueError, match="identifier"):
        Runtime("toy,x", cached)
    with pytest.raises(TypeError, match="factory must be callable"):
        Runtime("toy_x", None)
    with pytest.raises(TypeError, match="a Runtime record alone"):
        bench.register_runtime(Runtime("toy_x", cached), cached)
    with pytest.raises(ValueError, match="unknown runtime 'toy_never'; known: eager, "):
        bench.unregister_runtime("toy_never")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_no_runtime_is_available_on_cuda_without_cuda_and_a_bad_device_name_raises():
    assert bench.available_runtimes("cuda") == [] and bench.default_runtimes("cuda:1") == []
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got 'tpu'"):
        bench.available_runtimes("tpu")
