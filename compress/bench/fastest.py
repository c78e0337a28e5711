"""The fastest float runtime for one model: what the study's latency column reports (``latency_runtime`` beside
it names the runtime)."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from compress.bench import latency
from compress.bench.records import LatencyRecord, fastest, fastest_summary
from compress.bench.runtimes import available_runtimes, float_runtimes
from compress.data import DataBundle, Normalizer, Split

__all__ = ["fastest_latency", "fastest", "fastest_summary"]


def fastest_latency(model: nn.Module, input_shape: Sequence[int], *, runtimes: Sequence[str] | None = None,
                    batch_size: int = 1, threads: int = 1, warmup: int = latency.LATENCY_WARMUP,
                    repeats: int = latency.LATENCY_REPEATS, data: DataBundle | Split | None = None,
                    normalizer: Normalizer | None = None) -> tuple[float | None, str | None]:
    """``(median ms, runtime)`` of the fastest of ``runtimes`` (default :func:`~compress.bench.float_runtimes`:
    the float runtimes of the default set, a registered one included; those not installed here are skipped) that
    passed its output check on CPU, at ``batch_size`` with ``threads`` threads, with the warm-up and timed calls of
    :func:`~compress.bench.latency_ms`; ``(None, None)`` when none passed. ``data``/``normalizer`` as
    :func:`~compress.bench.measure`'s."""
    available = available_runtimes("cpu")
    records: list[LatencyRecord] = []
    for runtime in float_runtimes("cpu") if runtimes is None else runtimes:
        if runtime in available:
            records += latency.measure(model, input_shape, runtime=runtime, batch_sizes=(batch_size,),
                                       threads=threads, warmup=warmup, repeats=repeats, data=data,
                                       normalizer=normalizer)
    best = fastest(records).get(batch_size)
    return (best.median_ms, best.runtime) if best else (None, None)
