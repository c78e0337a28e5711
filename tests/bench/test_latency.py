"""compress.bench and ``compress bench``: measurement logic, never absolute times."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from compress import bench
from compress.bench import latency, runtimes
from compress.bench.torch_runtimes import torch_runner
from compress.cli import main

SHAPE = (1, 16, 16)
FIELDS = {"runtime", "device", "device_name", "batch_size", "threads", "median_ms", "iqr_ms", "p95_ms",
          "images_per_s", "notes", "compile_s", "error", "max_abs_diff", "warmup", "repeats", "input_shape"}
FAST = dict(warmup=1, repeats=5)


def small_net() -> nn.Module:
    """conv-BN-ReLU, a depthwise-separable block, pool, linear; BN statistics made non-trivial so that a
    wrong fold or export would change the outputs."""
    def cba(cin, cout, k, stride=1, groups=1):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    torch.manual_seed(0)
    model = nn.Sequential(*cba(1, 8, 3), *cba(8, 8, 3, 2, groups=8), *cba(8, 16, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 7))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


class ThreadProbe(nn.Module):
    """Records torch's intra-op thread count at every forward, in a list shared by every copy of the probe
    (``measure`` times a copy of the model it is given)."""

    seen: list[int] = []

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return self.fc(x.flatten(1))


def test_records_have_fields_one_per_batch_size():
    records = latency.measure(small_net(), SHAPE, batch_sizes=(1, 3), threads=1, **FAST)
    assert [r.batch_size for r in records] == [1, 3]
    for r in records:
        d = r.to_dict()
        assert FIELDS <= set(d)
        assert (r.runtime, r.device, r.threads, r.repeats, r.input_shape) == ("eager", "cpu", 1, 5, [1, 16, 16])
        assert r.error is None and r.device_name
        assert 0 < r.median_ms <= r.p95_ms
        assert r.iqr_ms >= 0
        assert r.images_per_s == pytest.approx(r.batch_size / r.median_ms * 1e3)
        json.dumps(d)  # JSON-serializable as is


def test_summary_statistics():
    median, iqr, p95 = latency.summarize_times([float(v) for v in range(1, 102)])  # 1..101
    assert (median, iqr, p95) == (51.0, 50.0, 96.0)
    assert latency.summarize_times([2.5]) == (2.5, 0.0, 2.5)


def test_threads_set_during_measurement_and_restored():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    probe = ThreadProbe()
    probe.seen.clear()
    (record,) = latency.measure(probe, (4,), batch_sizes=(2,), threads=wanted, **FAST)
    assert record.threads == wanted
    assert len(probe.seen) >= FAST["warmup"] + FAST["repeats"] and set(probe.seen) == {wanted}
    assert torch.get_num_threads() == before


def test_threads_default_is_current_count_and_reported():
    records = latency.measure(small_net(), SHAPE, batch_sizes=(1,), **FAST)
    assert records[0].threads == torch.get_num_threads()


def test_half_model_is_upcast_on_cpu_and_says_so():
    records = latency.measure(small_net().half(), SHAPE, batch_sizes=(2,), threads=1, **FAST)
    assert records[0].error is None
    assert any("upcast to float32 on CPU" in n for n in records[0].notes)


def test_fp16_artifact_is_upcast_on_cpu_and_says_so(tmp_path):
    from compress import models
    from compress.export import artifact

    path = artifact.save(models.create("fer_hw8_torch", width_mult=0.25, input_size=16), tmp_path / "m.npz",
                         codec="fp16")
    records = latency.measure(path, SHAPE, batch_sizes=(1,), threads=1, runtime="folded", **FAST)
    assert records[0].error is None
    notes = " ".join(records[0].notes)
    assert "artifact m.npz (fp16)" in notes and "upcast to float32 on CPU" in notes


@pytest.mark.parametrize("runtime", ["folded", "channels_last"])
def test_torch_runtimes_match_eager(runtime):
    records = latency.measure(small_net(), SHAPE, runtime=runtime, batch_sizes=(1, 4), threads=1, **FAST)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff is not None and r.max_abs_diff < 1e-4
        assert r.notes


def test_folded_runtime_really_folds():
    model = small_net()
    runner = runtimes.make_runner(model, SHAPE, runtime="folded")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in runner.model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())     # the model itself is untouched


def test_failing_runtime_gives_error_records_not_a_crash(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler found\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    records = latency.measure(small_net(), SHAPE, runtime="compile", batch_sizes=(1, 2), threads=1, **FAST)
    assert [r.batch_size for r in records] == [1, 2]
    for r in records:
        assert r.error == "RuntimeError: no C compiler found"
        assert r.median_ms is None and r.images_per_s is None


def test_runtime_that_disagrees_with_eager_gets_no_time():
    def shifted(model, shape, **_):   # a runtime whose outputs are off by one
        return torch_runner(nn.Sequential(model, _AddOne()))

    bench.register_runtime("shifted", shifted)
    try:
        with pytest.raises(ValueError, match="already registered"):
            bench.register_runtime("shifted", shifted)
        (record,) = latency.measure(small_net(), SHAPE, runtime="shifted", batch_sizes=(1,), threads=1, **FAST)
    finally:
        bench.unregister_runtime("shifted")
    assert record.median_ms is None
    assert "differ from eager" in record.error and record.max_abs_diff == pytest.approx(1.0)
    assert "shifted" not in bench.runtime_names()


class _AddOne(nn.Module):
    def forward(self, x):
        return x + 1


def test_bad_input_raises_value_error(monkeypatch):
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        latency.measure(small_net(), SHAPE, runtime="tensorrt")
    with pytest.raises(ValueError, match="device must be"):
        latency.measure(small_net(), SHAPE, device="tpu")
    with pytest.raises(ValueError, match="input_shape"):
        latency.measure(small_net(), (1, 0, 16))
    with pytest.raises(ValueError, match="batch size"):
        latency.measure(small_net(), SHAPE, batch_sizes=(0,))
    with pytest.raises(ValueError, match="repeats"):
        latency.measure(small_net(), SHAPE, repeats=0)
    with pytest.raises(TypeError, match="nn.Module or an artifact path"):
        latency.measure(42, SHAPE)
    with pytest.raises(FileNotFoundError):
        latency.measure("no/such/artifact.npz", SHAPE)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install 'compress\[onnx\]'"):
        latency.measure(small_net(), SHAPE, runtime="onnxruntime")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_raises_value_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        latency.measure(small_net(), SHAPE, device="cuda")


# ---------------------------------------------------------------------------------------------- ONNX


def test_onnxruntime_runtime_matches_eager():
    pytest.importorskip("onnxruntime")
    records = latency.measure(small_net(), SHAPE, runtime="onnxruntime", batch_sizes=(1, 3), threads=1, **FAST)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff < 1e-4
        assert any("intra_op 1, inter_op 1" in n for n in r.notes)


def test_onnxruntime_restores_torch_threads():
    pytest.importorskip("onnxruntime")
    before = torch.get_num_threads()
    latency.measure(small_net(), SHAPE, runtime="onnxruntime", batch_sizes=(1,), threads=1 if before != 1 else 2,
                    **FAST)
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("runtime", ["folded", "channels_last", "cuda_graph"])
def test_cuda_runtimes_match_eager(runtime):
    records = latency.measure(small_net().cuda(), SHAPE, device="cuda", runtime=runtime, batch_sizes=(1, 8), **FAST)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff < 1e-3


def test_cuda_graph_needs_cuda():
    with pytest.raises(ValueError, match="'cuda_graph' needs device 'cuda'"):
        latency.measure(small_net(), SHAPE, runtime="cuda_graph")
    assert "cuda_graph" not in runtimes.available_runtimes("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("half", [False, True])
def test_cuda_records(half):
    model = small_net().half() if half else small_net()
    records = latency.measure(model, SHAPE, device="cuda", batch_sizes=(1, 8), **FAST)
    for r in records:
        assert r.error is None and r.device == "cuda"
        assert r.device_name == torch.cuda.get_device_name()
        assert r.median_ms > 0
    assert any("float16 weights run in float16 on CUDA" in n for n in records[0].notes) == half


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_bench_model_name_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    status = main(["bench", "fer_hw8_torch", "--width", "0.25", "--input", "1x16x16", "--runtimes", "eager,folded",
                   "--batch-sizes", "1,2", "--threads", "1", "--warmup", "1", "--repeats", "3", "--json", str(out)])
    assert status == 0
    records = json.loads(out.read_text())
    assert [(r["runtime"], r["batch_size"]) for r in records] == [("eager", 1), ("eager", 2), ("folded", 1), ("folded", 2)]
    assert all(FIELDS <= set(r) and r["threads"] == 1 and r["input_shape"] == [1, 16, 16] for r in records)
    printed = capsys.readouterr().out
    assert "median_ms" in printed and "folded" in printed


def test_cli_bench_artifact(tmp_path, capsys):
    from compress import models
    from compress.export import artifact

    path = artifact.save(models.create("fer_hw8_torch", width_mult=0.25, input_size=16), tmp_path / "m.npz",
                         codec="fp16")
    out = tmp_path / "bench.json"
    assert main(["bench", str(path), "--runtimes", "eager", "--batch-sizes", "1", "--repeats", "2",
                 "--json", str(out)]) == 0
    (record,) = json.loads(out.read_text())
    assert record["input_shape"] == [1, 16, 16]  # from the artifact's model card
    assert any("upcast" in n for n in record["notes"])


@pytest.mark.parametrize("argv, message", [
    (["bench", "mlp", "--runtimes", "eager,tensorrt"], "unknown runtime 'tensorrt'"),
    (["bench", "no_such_model"], "neither a run folder, an artifact file nor a model name"),
    (["bench", "mlp", "--input", "1x16x12"], "H == W"),
])
def test_cli_bench_bad_input_is_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cli_bench_cuda_without_cuda(capsys):
    assert main(["bench", "mlp", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_cli_bench_run_folder(tmp_path):
    from compress import data, models, train

    bundle = data.synthetic(120, num_classes=3, size=12, seed=1)
    model = models.create("mlp", width_mult=0.125, num_classes=3, input_size=12)
    config = train.TrainConfig(epochs=1, batch_size=32, threads=1, augment=False)
    train.fit(model, bundle, config, out=tmp_path / "run", progress=False)
    out = tmp_path / "bench.json"
    assert main(["bench", str(tmp_path / "run"), "--runtimes", "eager,folded", "--batch-sizes", "2",
                 "--repeats", "2", "--warmup", "0", "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["runtime"] for r in records] == ["eager", "folded"]
    assert all(r["input_shape"] == [1, 12, 12] and r["error"] is None for r in records)  # from the run's model card
