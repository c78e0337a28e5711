"""The fastest runtime that passed its output check: what ``compress bench`` names and the study's latency
column reports."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from compress.bench.latency import LatencyRecord, measure
from compress.bench.runtimes import available_runtimes

__all__ = ["fastest", "fastest_summary", "fastest_latency", "FLOAT_RUNTIMES"]

# Runtimes that run the model's own float32 numbers (checked against eager at float32 tolerance); the
# study's latency column picks among these, since its accuracy column is the float model's.
FLOAT_RUNTIMES = ("eager", "folded", "onnxruntime", "openvino")


def fastest(records: Sequence[LatencyRecord]) -> dict[int, LatencyRecord]:
    """``{batch size: record}``: per batch size, the record with the smallest median among those that have a
    time (a runtime that failed to build or whose outputs disagreed with eager has none). Batch sizes where no
    runtime passed are left out."""
    best: dict[int, LatencyRecord] = {}
    for r in records:
        if r.error is None and r.median_ms is not None:
            if r.batch_size not in best or r.median_ms < best[r.batch_size].median_ms:
                best[r.batch_size] = r
    return dict(sorted(best.items()))


def fastest_summary(records: Sequence[LatencyRecord]) -> str:
    """One line per batch size naming the fastest runtime that passed and its speed-up over eager when eager
    was measured, e.g. ``batch 1: onnxruntime_int8, 0.151 ms (12.3x eager)``."""
    eager = {r.batch_size: r for r in records if r.runtime == "eager" and r.median_ms}
    lines = ["fastest runtime that passed its output check:"]
    best = fastest(records)
    for batch, r in best.items():
        ratio = f" ({eager[batch].median_ms / r.median_ms:.1f}x eager)" if batch in eager else ""
        lines.append(f"  batch {batch}: {r.runtime}, {r.median_ms:.3f} ms{ratio}")
    if not best:
        lines.append("  none (every runtime failed)")
    return "\n".join(lines)


def fastest_latency(model: nn.Module, input_shape: Sequence[int], *, runtimes: Sequence[str] = FLOAT_RUNTIMES,
                    batch_size: int = 1, threads: int = 1, warmup: int = 5, repeats: int = 30,
                    calibration: torch.Tensor | None = None) -> tuple[float | None, str | None]:
    """``(median ms, runtime)`` of the fastest of ``runtimes`` (those installed here, CPU) that passed its
    output check, at ``batch_size`` with ``threads`` threads; ``(None, None)`` when none passed."""
    available = available_runtimes("cpu")
    records = []
    for runtime in runtimes:
        if runtime in available:
            records += measure(model, input_shape, runtime=runtime, batch_sizes=(batch_size,), threads=threads,
                               warmup=warmup, repeats=repeats, calibration=calibration)
    best = fastest(records).get(batch_size)
    return (best.median_ms, best.runtime) if best else (None, None)
