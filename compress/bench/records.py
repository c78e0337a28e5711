"""What a latency measurement gives: one :class:`LatencyRecord` per runtime, device and batch size, a
:class:`LatencyResult` holding them (``.table()``, ``.fastest()``, ``.to_dict()``), and how they read: the table
and the fastest runtime that passed its output check (what ``compress bench`` prints)."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence, overload

__all__ = ["LatencyRecord", "LatencyResult", "format_table", "fastest", "fastest_summary"]


@dataclasses.dataclass
class LatencyRecord:
    """Latency of one model, runtime, device and batch size. Times are per call (one batch)."""

    runtime: str
    device: str  # "cpu" or "cuda"
    device_name: str  # CPU model or CUDA device name
    batch_size: int  # images per call
    threads: int  # torch intra-op threads (and ONNX Runtime intra_op threads) during timing
    input_shape: list[int]  # one image, e.g. [1, 48, 48]
    median_ms: float | None  # None when the runtime failed (see error)
    iqr_ms: float | None  # interquartile range (p75 - p25) of the per-call times
    p95_ms: float | None
    images_per_s: float | None  # batch_size / median
    warmup: int  # untimed calls before timing
    repeats: int  # timed calls
    compile_s: float | None = None  # runtime "compile": first call at this batch size (trace + codegen)
    max_abs_diff: float | None = None  # largest |output - eager output| on the check batch
    error: str | None = None  # why there is no time
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class LatencyResult:
    """The records of one or more measurements, in order; iterable and indexable like the list of them
    (``measure(...)[0].median_ms``), and ``+`` joins two results (several runtimes side by side)."""

    records: list[LatencyRecord] = dataclasses.field(default_factory=list)

    def __iter__(self) -> Iterator[LatencyRecord]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, index: int) -> LatencyRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[LatencyRecord]: ...
    def __getitem__(self, index: int | slice) -> LatencyRecord | list[LatencyRecord]:
        return self.records[index]

    def __add__(self, other: "LatencyResult | Sequence[LatencyRecord]") -> "LatencyResult":
        return LatencyResult(self.records + list(other))

    def table(self) -> str:
        """One line per record (:func:`format_table`)."""
        return format_table(self.records)

    def fastest(self) -> dict[int, LatencyRecord]:
        """Per batch size, the fastest record that passed its output check (:func:`fastest`)."""
        return fastest(self.records)

    def summary(self) -> str:
        """The table, then one line per batch size naming the fastest runtime (:func:`fastest_summary`)."""
        return f"{self.table()}\n{fastest_summary(self.records)}"

    def to_dict(self) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in self.records]}


def format_table(records: Sequence[LatencyRecord]) -> str:
    """Plain-text table of records, one line each (median, IQR, p95 in ms, images/s); errors in place of times."""
    if not records:
        return "(no records)"
    head = records[0]
    lines = [f"{head.device_name}, input {'x'.join(map(str, head.input_shape))}",
             f"{'runtime':<18}{'device':<7}{'batch':>6}{'threads':>8}{'median_ms':>11}{'iqr_ms':>9}"
             f"{'p95_ms':>9}{'images_per_s':>14}  notes"]
    for r in records:
        left = f"{r.runtime:<18}{r.device:<7}{r.batch_size:>6}{r.threads:>8}"
        if r.error:
            lines.append(f"{left}  error: {r.error}")
            continue
        extra = [f"compile {r.compile_s:.1f} s"] if r.compile_s is not None else []
        lines.append(f"{left}{r.median_ms:>11.3f}{r.iqr_ms:>9.3f}{r.p95_ms:>9.3f}{r.images_per_s:>14,.0f}  "
                     + "; ".join(extra + [n for n in r.notes if not n.startswith(("onnxruntime ", "openvino "))]))
    return "\n".join(lines)


def fastest(records: Sequence[LatencyRecord]) -> dict[int, LatencyRecord]:
    """``{batch size: record}``: per batch size, the record with the smallest median among those that have a
    time (a runtime that failed to build or whose outputs disagreed with eager has none). Batch sizes where no
    runtime passed are left out."""
    best: dict[int, LatencyRecord] = {}
    for r in records:
        if r.error is None and r.median_ms is not None:
            if r.batch_size not in best or r.median_ms < _median_ms(best[r.batch_size]):
                best[r.batch_size] = r
    return dict(sorted(best.items()))


def _median_ms(r: LatencyRecord) -> float:
    """The median of a record kept for having one."""
    assert r.median_ms is not None
    return r.median_ms


def fastest_summary(records: Sequence[LatencyRecord]) -> str:
    """One line per batch size naming the fastest runtime that passed and its speed-up over eager when eager
    was measured, e.g. ``batch 1: onnxruntime_int8, 0.151 ms (12.3x eager)``."""
    eager = {r.batch_size: r for r in records if r.runtime == "eager" and r.median_ms}
    lines = ["fastest runtime that passed its output check:"]
    best = fastest(records)
    for batch, r in best.items():
        ratio = f" ({_median_ms(eager[batch]) / _median_ms(r):.1f}x eager)" if batch in eager else ""
        lines.append(f"  batch {batch}: {r.runtime}, {r.median_ms:.3f} ms{ratio}")
    if not best:
        lines.append("  none (every runtime failed)")
    return "\n".join(lines)
