"""compress.bench.fastest: the fastest runtime that passed its output check."""

from __future__ import annotations

import torch
from torch import nn

from compress.bench import FLOAT_RUNTIMES, LatencyRecord, fastest, fastest_latency, fastest_summary


def _record(runtime, batch, median_ms, error=None):
    return LatencyRecord(runtime=runtime, device="cpu", device_name="cpu", batch_size=batch, threads=1,
                         input_shape=[1, 8, 8], median_ms=median_ms, iqr_ms=0.0 if median_ms else None,
                         p95_ms=median_ms, images_per_s=None, warmup=0, repeats=1, error=error)


def test_fastest_skips_failed_runtimes_per_batch_size():
    records = [_record("eager", 1, 2.0), _record("onnxruntime", 1, 0.5), _record("onnxruntime_int8", 1, None,
               error="OutputMismatchError: outputs differ"), _record("eager", 32, 20.0), _record("folded", 32, 8.0),
               _record("compile", 256, None, error="RuntimeError: no compiler")]
    best = fastest(records)
    assert {b: r.runtime for b, r in best.items()} == {1: "onnxruntime", 32: "folded"}
    text = fastest_summary(records)
    assert "batch 1: onnxruntime, 0.500 ms (4.0x eager)" in text and "batch 32: folded, 8.000 ms (2.5x eager)" in text
    assert "none" in fastest_summary([_record("compile", 1, None, error="x")])


def test_fastest_latency_picks_among_float_runtimes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3)).eval()
    ms, runtime = fastest_latency(model, (1, 8, 8), warmup=1, repeats=3)
    assert ms > 0 and runtime in FLOAT_RUNTIMES
    assert fastest_latency(model, (1, 8, 8), runtimes=("tensorrt",), repeats=1) == (None, None)
