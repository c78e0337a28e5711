"""compress.bench.fastest and records: the fastest runtime that passed its output check, and latency_ms."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from compress import bench
from compress.bench import LatencyRecord, Runner, Runtime, fastest, fastest_latency, fastest_summary, latency_ms

SHAPE = (1, 8, 8)


def _record(runtime, batch, median_ms, error=None):
    return LatencyRecord(runtime=runtime, device="cpu", device_name="cpu", batch_size=batch, threads=1,
                         input_shape=[1, 8, 8], median_ms=median_ms, iqr_ms=0.0 if median_ms else None,
                         p95_ms=median_ms, images_per_s=None, warmup=0, repeats=1, error=error)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()


def _sleeping(seconds: float):
    """A toy runtime factory: the model's output, after sleeping ``seconds`` per call (a known latency)."""
    def factory(model, shape, **_):
        def prepare(x):
            with torch.inference_mode():
                y = model(x)

            def call():
                time.sleep(seconds)
                return y

            return call, lambda out: out

        return Runner(prepare, [f"sleeps {seconds * 1e3:g} ms"], model)
    return factory


@pytest.fixture()
def sleepers():
    """Two toy runtimes registered for one test: ``toy_slow`` (5 ms a call) and ``toy_fast`` (0.5 ms)."""
    for name, seconds in (("toy_slow", 5e-3), ("toy_fast", 5e-4)):
        bench.register_runtime(Runtime(name, _sleeping(seconds), default=False))
    yield
    for name in ("toy_slow", "toy_fast"):
        bench.unregister_runtime(name)


def test_fastest_skips_failed_runtimes_per_batch_size():
    records = [_record("eager", 1, 2.0), _record("onnxruntime", 1, 0.5), _record("onnxruntime_int8", 1, None,
               error="OutputMismatchError: outputs differ"), _record("eager", 32, 20.0), _record("folded", 32, 8.0),
               _record("compile", 256, None, error="RuntimeError: no compiler")]
    best = fastest(records)
    assert {b: r.runtime for b, r in best.items()} == {1: "onnxruntime", 32: "folded"}
    text = fastest_summary(records)
    assert "batch 1: onnxruntime, 0.500 ms (4.0x eager)" in text and "batch 32: folded, 8.000 ms (2.5x eager)" in text
    assert "none" in fastest_summary([_record("compile", 1, None, error="x")])


def test_fastest_latency_names_the_runtime_with_the_smallest_median(sleepers):
    ms, runtime = fastest_latency(_model(), SHAPE, runtimes=("toy_slow", "toy_fast"))
    assert runtime == "toy_fast" and 0.5 <= ms < 5.0   # the 0.5 ms runtime's own median, not the 5 ms one's
    ms, runtime = fastest_latency(_model(), SHAPE, runtimes=("toy_slow",))
    assert runtime == "toy_slow" and ms >= 5.0


def test_fastest_latency_picks_among_the_float_runtimes_installed_here():
    ms, runtime = fastest_latency(_model(), SHAPE, warmup=1, repeats=3)
    assert runtime in bench.float_runtimes("cpu") and ms > 0
    assert fastest_latency(_model(), SHAPE, runtimes=("tensorrt",), repeats=1) == (None, None)


def test_measure_gives_a_result_with_table_fastest_and_dict(sleepers):
    result = bench.measure(_model(), SHAPE, runtime="toy_slow", batch_sizes=(1, 2), threads=1, warmup=0, repeats=3)
    result += bench.measure(_model(), SHAPE, runtime="toy_fast", batch_sizes=(1,), threads=1, warmup=0, repeats=3)
    assert [(r.runtime, r.batch_size) for r in result] == [("toy_slow", 1), ("toy_slow", 2), ("toy_fast", 1)]
    assert len(result) == 3 and result[0].median_ms >= 5.0
    assert {b: r.runtime for b, r in result.fastest().items()} == {1: "toy_fast", 2: "toy_slow"}
    assert result.table() == bench.format_table(list(result)) and "toy_fast" in result.table()
    assert result.to_dict() == {"records": [r.to_dict() for r in result]}


def test_latency_ms_times_the_stated_warmup_and_repeats():
    ms = latency_ms(_model(), SHAPE, runtime="eager", batch_size=2, threads=1)
    assert isinstance(ms, float) and ms > 0
    seen = []
    bench.register_runtime(Runtime("toy_counting", lambda m, s, **_: _counted(m, seen)))
    try:
        latency_ms(_model(), SHAPE, runtime="toy_counting")
    finally:
        bench.unregister_runtime("toy_counting")
    # one checked call, then the warm-up and the timed calls
    assert len(seen) == 1 + bench.LATENCY_WARMUP + bench.LATENCY_REPEATS == 36


def _counted(model, seen) -> Runner:
    def prepare(x):
        def call():
            seen.append(1)
            with torch.inference_mode():
                return model(x)
        return call, lambda y: y
    return Runner(prepare, [], model)


def test_latency_ms_names_the_runtime_that_failed():
    def broken(model, shape, **_):
        raise RuntimeError("no kernels for this model")

    bench.register_runtime("toy_broken", broken)
    try:
        with pytest.raises(ValueError, match="runtime 'toy_broken' failed: RuntimeError: no kernels for this model"):
            latency_ms(_model(), SHAPE, runtime="toy_broken")
    finally:
        bench.unregister_runtime("toy_broken")
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        latency_ms(_model(), SHAPE, runtime="tensorrt")
