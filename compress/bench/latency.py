"""Inference latency of a model across runtimes, on CPU and CUDA.

Fewer parameters and MACs do not mean lower latency: depthwise convolutions are memory-bound and tiny
models are dominated by per-op overhead. :func:`measure` times one model under one runtime at several
batch sizes and returns a :class:`~compress.bench.records.LatencyResult`, one record per batch size;
:func:`latency_ms` is the one number a budget limits (median ms at one batch size).

Timing rules (``shared/REFERENCES.md``): every call is timed on its own after a warm-up; the thread
count is fixed for the measurement and reported (and restored afterwards); on CUDA each call is
bracketed by CUDA events and synchronized; the summary is the median with interquartile range and p95.
Every runtime other than ``eager`` is checked against eager outputs first (at its record's tolerance: the
input dtype's, or the runner's own for int8 and half precision); a runtime that disagrees gets an ``error``
instead of a time. A runtime that fails to build (``torch.compile`` without a C compiler, say) yields
records carrying the error rather than crashing the whole benchmark. ``compile``'s first call at each batch
size (tracing and code generation) is reported separately as ``compile_s`` and not part of the timed calls.

Sizes are checked before anything is allocated: one batch of float32 inputs may take at most
:data:`MAX_INPUT_BYTES` (:func:`check_input_bytes`); ``compress bench --batch-sizes 1000000000`` or ``--input
1x100000x100000`` is a ValueError naming the batch and shape, not an allocation failure.

The runtimes are the records of :mod:`compress.bench.runtimes` (each implementation module documents its own).
With ``data`` (a ``DataBundle`` or ``Split``, plus ``normalizer``), ``Int8Config().calibration_images`` of its
training images are what the int8 runtimes calibrate on (else N(0, 1) inputs) and what every runtime is checked
on (cycled to the batch size) instead of N(0, 1) inputs.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from compress.bench.records import LatencyRecord, LatencyResult
from compress.bench.registry import OutputMismatchError, get_runtime, tolerance
from compress.bench.runtimes import calibration_inputs, call_factory, runtime_factory
from compress.data import DataBundle, Normalizer, Split
from compress.device import device_name, resolve_device, torch_threads
from compress.int8.weights import int8_weights
from compress.onnx import check_input_shape, max_difference

__all__ = ["measure", "latency_ms", "time_calls", "summarize_times", "check_input_bytes", "LATENCY_WARMUP",
           "LATENCY_REPEATS", "MAX_INPUT_BYTES"]

# The one-number latency (budgets' latency_ms, the study's latency column): untimed calls, then timed calls whose
# median is the number. measure()'s own defaults (10, 50) are for the tables compress bench prints.
LATENCY_WARMUP = 5
LATENCY_REPEATS = 30
MAX_INPUT_BYTES = 2 ** 30   # one batch of float32 inputs (batch x C x H x W x 4 bytes): 1 GiB


def check_input_bytes(input_shape: Sequence[int], batch_size: int) -> None:
    """Raise ValueError naming the batch and shape when a float32 batch of ``batch_size`` inputs of
    ``input_shape`` would take more than :data:`MAX_INPUT_BYTES` (checked before anything is allocated)."""
    nbytes = int(batch_size) * math.prod(int(d) for d in input_shape) * 4
    if nbytes > MAX_INPUT_BYTES:
        raise ValueError(f"batch size {batch_size} x input {'x'.join(map(str, input_shape))}: one float32 batch "
                         f"would take {nbytes / 2**30:,.3g} GiB, over the limit of {MAX_INPUT_BYTES / 2**30:g} GiB; "
                         f"use smaller batch sizes or a smaller input")


def measure(
    model_or_artifact: nn.Module | str | os.PathLike,
    input_shape: Sequence[int],
    *,
    device: str = "cpu",
    runtime: str = "eager",
    batch_sizes: Sequence[int] = (1, 32),
    threads: int | None = None,
    warmup: int = 10,
    repeats: int = 50,
    data: DataBundle | Split | None = None,
    normalizer: Normalizer | None = None,
) -> LatencyResult:
    """Time ``model_or_artifact`` on inputs of shape ``(batch, *input_shape)``, one record per batch size.

    ``model_or_artifact`` is an ``nn.Module`` (not modified: a copy is put in eval mode) or the path of
    an artifact written by ``compress.export.artifact``. ``input_shape`` is one image, e.g. ``(1, 48, 48)``.
    ``threads`` (default: the current ``torch.get_num_threads()``) is set for the measurement and
    restored afterwards. fp16 models are upcast to float32 on CPU, where half-precision matmul is
    unsupported, and the records say so. ``data`` (a ``DataBundle`` or ``Split``) and ``normalizer`` (the run's;
    default the data's own): its training images, as model inputs (:func:`compress.bench.runtimes.calibration_inputs`),
    are what int8 runtimes take activation ranges from and every runtime is checked on.

    Raises ``ValueError`` for an unknown runtime or device, CUDA requested without CUDA, a runtime
    whose optional package is missing, non-positive sizes or counts, data whose images are not of
    ``input_shape``, a batch of inputs over :data:`MAX_INPUT_BYTES`, or an int8 runtime asked to run an artifact
    whose codec has no int8 execution path.
    """
    shape = check_input_shape(input_shape)
    device = resolve_device(device).type
    factory = runtime_factory(runtime, device)
    batch_sizes = [_positive_int("batch size", b) for b in batch_sizes]
    if not batch_sizes:
        raise ValueError("batch_sizes is empty: give at least one batch size")
    check_input_bytes(shape, max(batch_sizes))
    warmup = _positive_int("warmup", warmup, allow_zero=True)
    repeats = _positive_int("repeats", repeats)
    threads = torch.get_num_threads() if threads is None else _positive_int("threads", threads)
    calibration = calibration_inputs(data, shape, normalizer=normalizer)   # checked before anything is built

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
            return LatencyResult([_failed(base, b, notes, exc) for b in batch_sizes])
        records = []
        for b in batch_sizes:
            x = _batch(calibration, b, shape).to(device=device, dtype=dtype)
            records.append(_measure_batch(model, runner, base, x, dtype, notes, warmup, repeats))
        return LatencyResult(records)


def latency_ms(model: nn.Module, input_shape: Sequence[int], *, runtime: str = "eager", batch_size: int = 1,
               threads: int = 1) -> float:
    """Median ms of one call of ``model`` on a batch of ``batch_size`` under ``runtime`` with ``threads`` CPU
    threads, after :data:`LATENCY_WARMUP` untimed calls, over :data:`LATENCY_REPEATS` timed ones: the latency a
    budget limits (``compress.budget``'s ``latency=``). Raises ValueError naming the runtime and its error when it
    could not be built or its outputs disagreed with eager, and like :func:`measure` for bad input."""
    (record,) = measure(model, input_shape, runtime=runtime, batch_sizes=(batch_size,), threads=threads,
                        warmup=LATENCY_WARMUP, repeats=LATENCY_REPEATS)
    if record.error is not None:
        raise ValueError(f"latency on runtime {runtime!r} failed: {record.error}")
    assert record.median_ms is not None   # a record without an error has its median
    return record.median_ms


def _batch(calibration: torch.Tensor | None, batch: int, shape: tuple[int, ...]) -> torch.Tensor:
    """``batch`` inputs: N(0, 1), or the calibration inputs cycled to ``batch``."""
    if calibration is None:
        return torch.randn(batch, *shape)
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
        planned = "plan" in manifest   # per-layer codecs: manifest["codec"] only covers the tensors the plan skips
        label = "per-layer plan" if planned else codec.label
        stored = torch.float16 if codec.label == "fp16" and not planned else None
        weights = None
        if get_runtime(runtime).kind == "int8":
            if planned:
                raise ValueError(f"runtime {runtime}: artifact {path.name} stores a per-layer plan, which has no int8 "
                                 "execution path; int8 runtimes run whole-model int8 files (--codec int8 --fold-bn)")
            weights = int8_weights(codec, encoded, source=f"runtime {runtime}: artifact {path.name}")
        return model.eval(), [f"artifact {path.name} ({label})"], stored, weights
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
