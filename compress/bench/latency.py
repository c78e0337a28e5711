"""Inference latency of a model across runtimes, on CPU and CUDA.

Fewer parameters and MACs do not mean lower latency: depthwise convolutions are memory-bound and tiny
models are dominated by per-op overhead. :func:`measure` times one model under one runtime at several
batch sizes and returns one :class:`LatencyRecord` per batch size.

Timing rules (``shared/REFERENCES.md``): every call is timed on its own after a warm-up; the thread
count is fixed for the measurement and reported (and restored afterwards); on CUDA each call is
bracketed by CUDA events and synchronized; the summary is the median with interquartile range and p95.
Every runtime other than ``eager`` is checked against eager outputs first; a runtime that disagrees
gets an ``error`` instead of a time. A runtime that fails to build (``torch.compile`` without a C
compiler, say) yields records carrying the error rather than crashing the whole benchmark.

Runtimes:

- ``eager``: the model as is, under ``torch.inference_mode``.
- ``folded``: BatchNorm folded into the preceding convolutions (``compress.models.fold_batchnorm``).
- ``channels_last``: weights and input in NHWC memory format.
- ``compile``: ``torch.compile``; the first call at each batch size (tracing and code generation) is
  reported separately as ``compile_s`` and not part of the timed calls.
- ``onnxruntime`` (optional extra ``compress[onnx]``): BatchNorm folded, exported with
  :func:`compress.export.onnx.export_onnx` (outputs checked against PyTorch), run by an ONNX Runtime session with full graph
  optimization, ``intra_op`` threads = the thread count, ``inter_op`` 1, sequential execution, no
  spinning, and I/O binding into a preallocated output (the input is rebound on every call).
- ``cuda_graph`` (CUDA only): BatchNorm folded, the forward pass captured once per batch size as a CUDA
  graph and replayed; a call copies the input into the graph's input buffer and replays. Small models on
  a GPU are bound by kernel-launch overhead, which this removes.
- ``cuda_graph_fp16``, ``cuda_graph_bf16`` (CUDA only; bf16 where the GPU has it): the same in half precision,
  the input cast in and the logits cast back inside the graph; checked against float32 eager at the half
  dtype's tolerance.
- ``openvino`` (optional extra ``compress[openvino]``, CPU): the ONNX export run by OpenVINO in float32, compiled
  per batch size for its static shape (:mod:`compress.bench.openvino`).
- ``onnxruntime_int8``, ``torch_int8``, ``openvino_int8`` (CPU): int8 execution (:mod:`compress.bench.int8`): an int8 artifact's
  stored int8 weights (or a float model through the int8+fold codec), activations calibrated on
  ``calibration`` images (else N(0, 1) inputs); checked against eager at ``INT8_TOLERANCE`` (20% of the largest
  output), a sanity check: ``compress export --int8`` checks accuracy.

With ``calibration`` images every runtime is checked on them (cycled to the batch size) instead of N(0, 1) inputs.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from compress.bench.runtimes import INT8_RUNTIMES, OutputMismatchError, call_factory, runtime_factory, tolerance
from compress.device import device_name, resolve_device, torch_threads
from compress.export.onnx import check_input_shape, max_difference

__all__ = ["LatencyRecord", "measure", "time_calls", "summarize_times", "format_table"]


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


def measure(
    model_or_artifact: nn.Module | str | os.PathLike,
    input_shape: Sequence[int],
    *,
    device: str = "cpu",
    runtime: str = "eager",
    batch_sizes: Sequence[int] = (1, 32, 256),
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    calibration: torch.Tensor | None = None,
) -> list[LatencyRecord]:
    """Time ``model_or_artifact`` on inputs of shape ``(batch, *input_shape)``, one record per batch size.

    ``model_or_artifact`` is an ``nn.Module`` (not modified: a copy is put in eval mode) or the path of
    an artifact written by ``compress.export.artifact``. ``input_shape`` is one image, e.g. ``(1, 48, 48)``.
    ``threads`` (default: the current ``torch.get_num_threads()``) is set for the measurement and
    restored afterwards. fp16 models are upcast to float32 on CPU, where half-precision matmul is
    unsupported, and the records say so. ``calibration``: model inputs (normalized images, ``(N, *input_shape)``)
    that int8 runtimes take activation ranges from and every runtime is checked on.

    Raises ``ValueError`` for an unknown runtime or device, CUDA requested without CUDA, a runtime
    whose optional package is missing, non-positive sizes or counts, or an int8 runtime asked to run an
    artifact whose codec has no int8 execution path.
    """
    shape = check_input_shape(input_shape)
    device = resolve_device(device).type
    factory = runtime_factory(runtime, device)
    batch_sizes = [_positive_int("batch size", b) for b in batch_sizes]
    if not batch_sizes:
        raise ValueError("batch_sizes is empty: give at least one batch size")
    warmup = _positive_int("warmup", warmup, allow_zero=True)
    repeats = _positive_int("repeats", repeats)
    threads = torch.get_num_threads() if threads is None else _positive_int("threads", threads)
    if calibration is not None:
        _batch(calibration, 1, shape)   # checks its shape before anything is built

    model, notes, stored, weights = _load(model_or_artifact, runtime)
    model, dtype, dtype_notes = _place(model, device, stored)
    notes = notes + dtype_notes
    base = dict(
        runtime=runtime, device=device, device_name=device_name(device), threads=threads,
        input_shape=list(shape), warmup=warmup, repeats=repeats,
    )
    with torch_threads(threads):
        try:
            runner = call_factory(factory, model, shape, dtype=dtype, device=device, threads=threads,
                                  weights=weights, calibration=calibration)
        except Exception as exc:  # a runtime that cannot be built is reported, not fatal
            return [_failed(base, b, notes, exc) for b in batch_sizes]
        records = []
        for b in batch_sizes:
            x = _batch(calibration, b, shape).to(device=device, dtype=dtype)
            records.append(_measure_batch(model, runner, base, x, dtype, notes, warmup, repeats))
        return records


def _batch(calibration: torch.Tensor | None, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``batch`` inputs: N(0, 1), or the calibration images cycled to ``batch``."""
    if calibration is None:
        return torch.randn(batch, *shape)
    if not isinstance(calibration, torch.Tensor) or tuple(calibration.shape[1:]) != shape or not len(calibration):
        raise ValueError(f"calibration must be a tensor of shape (N, {', '.join(map(str, shape))}) with N >= 1, "
                         f"got {getattr(calibration, 'shape', type(calibration).__name__)}")
    index = torch.arange(batch) % len(calibration)
    return calibration[index].float().cpu()


def _measure_batch(model, runner, base, x, dtype, notes, warmup, repeats) -> LatencyRecord:
    batch = len(x)
    extra: dict[str, Any] = {}
    try:
        call, output = runner(x)
        start = time.perf_counter()
        got = output(call())  # first call: where torch.compile traces and generates code
        first_s = time.perf_counter() - start
        if base["runtime"] == "compile":
            extra["compile_s"] = first_s
        if base["runtime"] != "eager":
            with torch.inference_mode():
                want = model(x)
            diff, tol = max_difference(got, want, **(getattr(runner, "tolerance", None) or tolerance(dtype)))
            extra["max_abs_diff"] = diff
            if diff > tol:
                raise OutputMismatchError(f"outputs differ from eager by {diff:.3g} (tolerance {tol:.3g})")
        times_ms = time_calls(call, base["device"], warmup, repeats)
    except Exception as exc:
        record = _failed(base, batch, notes, exc)
        for key, value in extra.items():
            setattr(record, key, value)
        return record
    median, iqr, p95 = summarize_times(times_ms)
    return LatencyRecord(**base, batch_size=batch, median_ms=median, iqr_ms=iqr, p95_ms=p95,
                         images_per_s=batch / median * 1e3 if median > 0 else None,
                         notes=list(notes) + list(getattr(runner, "notes", [])), **extra)


def time_calls(call: Callable[[], Any], device: str, warmup: int, repeats: int) -> list[float]:
    """Per-call times in ms. CUDA: each call between two events, synchronized before reading."""
    for _ in range(warmup):
        call()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        for _ in range(repeats):
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        clock = time.perf_counter
        for _ in range(repeats):
            t0 = clock()
            call()
            times.append((clock() - t0) * 1e3)
    return times


def summarize_times(times_ms: list[float]) -> tuple[float, float, float]:
    """Median, interquartile range and 95th percentile (inclusive method) of ``times_ms``."""
    if len(times_ms) == 1:
        return times_ms[0], 0.0, times_ms[0]
    q = statistics.quantiles(times_ms, n=100, method="inclusive")
    return statistics.median(times_ms), q[74] - q[24], q[94]


def _failed(base: dict, batch: int, notes: list[str], exc: BaseException) -> LatencyRecord:
    first_line = (str(exc).strip().splitlines() or [""])[0][:500]
    return LatencyRecord(**base, batch_size=batch, median_ms=None, iqr_ms=None, p95_ms=None,
                         images_per_s=None, error=f"{type(exc).__name__}: {first_line}", notes=list(notes))


def _load(model_or_artifact, runtime: str = "eager") -> tuple[nn.Module, list[str], torch.dtype | None, dict | None]:
    """(model in eval mode, notes, stored dtype, stored int8 weights or None) from a module (copied) or an
    artifact path. An int8 ``runtime`` on an artifact whose codec has no int8 path raises ValueError."""
    if isinstance(model_or_artifact, nn.Module):
        return copy.deepcopy(model_or_artifact).eval(), [], None, None
    if isinstance(model_or_artifact, (str, os.PathLike)):
        path = Path(model_or_artifact)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {str(path)!r} does not exist")
        from compress.export.artifact import read, restore
        from compress.quant.codecs import Codec

        manifest, encoded = read(path)
        model = restore(manifest, encoded, source=path)  # float32 on CPU whatever the codec
        codec = Codec.from_json(manifest["codec"])
        stored = torch.float16 if codec.label == "fp16" else None
        weights = None
        if runtime in INT8_RUNTIMES:
            from compress.export.onnx_int8 import int8_weights

            weights = int8_weights(codec, encoded, source=f"runtime {runtime}: artifact {path.name}")
        return model.eval(), [f"artifact {path.name} ({codec.label})"], stored, weights
    raise TypeError(f"model_or_artifact must be an nn.Module or an artifact path, not {type(model_or_artifact).__name__}")


def _place(model: nn.Module, device: str, stored: torch.dtype | None) -> tuple[nn.Module, torch.dtype, list[str]]:
    """Move to ``device`` in the dtype to time it in; returns (model, input dtype, notes).

    Half weights (a half model, or an fp16 artifact) run in half on CUDA and are upcast to float32 on CPU.
    """
    dtypes = {p.dtype for p in list(model.parameters()) + list(model.buffers()) if p.is_floating_point()}
    half = stored or next((d for d in (torch.float16, torch.bfloat16) if d in dtypes), None)
    if half is None:
        return model.float().to(device), torch.float32, []
    name = str(half).replace("torch.", "")
    if device == "cpu":
        return model.float(), torch.float32, [
            f"{name} weights upcast to float32 on CPU (half-precision matmul is unsupported there)"]
    return model.to(device=device, dtype=half), half, [f"{name} weights run in {name} on CUDA"]


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, not {value}")
    return value


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
