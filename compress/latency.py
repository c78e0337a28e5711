"""Inference latency of a model across runtimes, on CPU and CUDA, and ONNX export.

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
- ``folded``: BatchNorm folded into the preceding convolutions (``compress.quantize.fold_batchnorm``).
- ``channels_last``: weights and input in NHWC memory format.
- ``compile``: ``torch.compile``; the first call at each batch size (tracing and code generation) is
  reported separately as ``compile_s`` and not part of the timed calls.
- ``onnxruntime`` (optional extra ``compress[onnx]``): BatchNorm folded, exported with
  :func:`export_onnx` (outputs checked against PyTorch), run by an ONNX Runtime session with full graph
  optimization, ``intra_op`` threads = the thread count, ``inter_op`` 1, sequential execution, no
  spinning, and I/O binding into a preallocated output (the input is rebound on every call).
- ``cuda_graph`` (CUDA only): BatchNorm folded, the forward pass captured once per batch size as a CUDA
  graph and replayed; a call copies the input into the graph's input buffer and replays. Small models on
  a GPU are bound by kernel-launch overhead, which this removes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import statistics
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from compress import _io

RUNTIMES = ("eager", "folded", "channels_last", "compile", "onnxruntime", "cuda_graph")
DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


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


# --------------------------------------------------------------------------------------------------
# Public entry points


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
) -> list[LatencyRecord]:
    """Time ``model_or_artifact`` on inputs of shape ``(batch, *input_shape)``, one record per batch size.

    ``model_or_artifact`` is an ``nn.Module`` (not modified: a copy is put in eval mode) or the path of
    an artifact written by ``compress.artifact``. ``input_shape`` is one image, e.g. ``(1, 48, 48)``.
    ``threads`` (default: the current ``torch.get_num_threads()``) is set for the measurement and
    restored afterwards. fp16 models are upcast to float32 on CPU, where half-precision matmul is
    unsupported, and the records say so.

    Raises ``ValueError`` for an unknown runtime or device, CUDA requested without CUDA, a runtime
    whose optional package is missing, or non-positive sizes or counts.
    """
    shape = _check_shape(input_shape)
    device = check_device(device)
    factory = _runtime_factory(runtime, device)
    batch_sizes = [_positive_int("batch size", b) for b in batch_sizes]
    if not batch_sizes:
        raise ValueError("batch_sizes is empty: give at least one batch size")
    warmup = _positive_int("warmup", warmup, allow_zero=True)
    repeats = _positive_int("repeats", repeats)
    threads = torch.get_num_threads() if threads is None else _positive_int("threads", threads)

    model, notes, stored = _load(model_or_artifact)
    model, dtype, dtype_notes = _place(model, device, stored)
    notes = notes + dtype_notes
    base = dict(
        runtime=runtime, device=device, device_name=device_name(device), threads=threads,
        input_shape=list(shape), warmup=warmup, repeats=repeats,
    )
    with _torch_threads(threads):
        try:
            runner = factory(model, shape, dtype=dtype, device=device, threads=threads)
        except _NeedsUser:
            raise
        except Exception as exc:  # a runtime that cannot be built is reported, not fatal
            return [_failed(base, b, notes, exc) for b in batch_sizes]
        records = []
        for b in batch_sizes:
            records.append(_measure_batch(model, runner, base, b, shape, dtype, notes, warmup, repeats))
        return records


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int],
    *,
    fold_bn: bool = True,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    verify: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> Path:
    """Export ``model`` to an ONNX file at ``path`` for inputs ``(batch, *input_shape)``; return the path.

    The input is named ``input`` and the output ``logits``; the batch axis is dynamic unless
    ``dynamic_batch=False``. ``fold_bn`` folds BatchNorm into convolutions first. Weights are exported
    in float32 (fp16 models are upcast). With ``verify`` (needs onnxruntime) the file's outputs on a
    random batch of 2 are compared with PyTorch's (``|onnx - torch| <= atol + rtol * max|torch|``)
    before the file is moved into place, so a file that disagrees is never written. The write is atomic.
    ``model`` itself is not modified.

    Raises ``ValueError`` for a bad shape or when verification needs onnxruntime and it is missing,
    and ``OnnxMismatchError`` (a ``RuntimeError``) when the exported outputs disagree with PyTorch.
    """
    shape = _check_shape(input_shape)
    if verify:
        _require_onnxruntime()
    model = copy.deepcopy(model).float().cpu().eval()
    if fold_bn:
        model = _fold(model)
    example = torch.randn(2 if dynamic_batch else 1, *shape)
    with _io.atomic_path(path) as tmp:
        _torch_onnx_export(model, example, tmp, opset=opset, dynamic_batch=dynamic_batch)
        if verify:
            check_onnx(tmp, model, example, rtol=rtol, atol=atol)
    return Path(path)


class OnnxMismatchError(RuntimeError):
    """An exported ONNX model's outputs disagree with PyTorch's beyond the tolerance."""


def check_onnx(path: str | os.PathLike, model: nn.Module, example: torch.Tensor, *,
               rtol: float = 1e-3, atol: float = 1e-4) -> float:
    """Run the ONNX file at ``path`` and ``model`` on ``example``; return max |difference|.

    Raises ``OnnxMismatchError`` when it exceeds ``atol + rtol * max|torch output|``.
    """
    ort = _require_onnxruntime()
    session = ort.InferenceSession(str(path), _ort_options(ort, threads=1), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {INPUT_NAME: example.numpy()})[0])
    with torch.inference_mode():
        want = model(example).float()
    diff, tol = _difference(got, want, rtol=rtol, atol=atol)
    if diff > tol:
        raise OnnxMismatchError(f"ONNX output differs from PyTorch by {diff:.3g} (tolerance {tol:.3g}) in {path}")
    return diff


def device_name(device: str) -> str:
    """A human-readable name of ``device``: the CPU model or the CUDA device name."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def check_runtime(runtime: str, device: str = "cpu") -> None:
    """Raise ``ValueError`` unless ``runtime`` can run here on ``device`` (unknown runtime or device, CUDA
    not available, onnxruntime or its CUDA provider not installed)."""
    _runtime_factory(runtime, check_device(device))


def available_runtimes(device: str = "cpu") -> list[str]:
    """The runtimes that can run here on ``device`` (``onnxruntime`` only with its package installed)."""
    out = []
    for name in RUNTIMES:
        try:
            check_runtime(name, device)
        except ValueError:
            continue
        out.append(name)
    return out


# --------------------------------------------------------------------------------------------------
# One batch size


def _measure_batch(model, runner, base, batch, shape, dtype, notes, warmup, repeats) -> LatencyRecord:
    x = torch.randn(batch, *shape).to(device=base["device"], dtype=dtype)
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
            diff, tol = _difference(got, want, **_tolerance(dtype))
            extra["max_abs_diff"] = diff
            if diff > tol:
                raise OnnxMismatchError(f"outputs differ from eager by {diff:.3g} (tolerance {tol:.3g})")
        times_ms = time_calls(call, base["device"], warmup, repeats)
    except _NeedsUser:
        raise
    except Exception as exc:
        record = _failed(base, batch, notes, exc)
        for key, value in extra.items():
            setattr(record, key, value)
        return record
    median, iqr, p95 = summarize(times_ms)
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


def summarize(times_ms: list[float]) -> tuple[float, float, float]:
    """Median, interquartile range and 95th percentile (inclusive method) of ``times_ms``."""
    if len(times_ms) == 1:
        return times_ms[0], 0.0, times_ms[0]
    q = statistics.quantiles(times_ms, n=100, method="inclusive")
    return statistics.median(times_ms), q[74] - q[24], q[94]


def _failed(base: dict, batch: int, notes: list[str], exc: BaseException) -> LatencyRecord:
    first_line = (str(exc).strip().splitlines() or [""])[0][:500]
    return LatencyRecord(**base, batch_size=batch, median_ms=None, iqr_ms=None, p95_ms=None,
                         images_per_s=None, error=f"{type(exc).__name__}: {first_line}", notes=list(notes))


def _difference(got: torch.Tensor, want: torch.Tensor, *, rtol: float, atol: float) -> tuple[float, float]:
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    if got.shape != want.shape:
        raise OnnxMismatchError(f"output shape {tuple(got.shape)} differs from eager {tuple(want.shape)}")
    diff = (got - want).abs().max().item() if want.numel() else 0.0
    return diff, atol + rtol * (want.abs().max().item() if want.numel() else 0.0)


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"rtol": 1e-2, "atol": 1e-3} if dtype in (torch.float16, torch.bfloat16) else {"rtol": 1e-3, "atol": 1e-4}


# --------------------------------------------------------------------------------------------------
# Runtimes: each factory takes (model, shape, dtype, device, threads) and returns a runner;
# runner(x) -> (call, output) where call() runs one batch and output(result) gives a torch tensor.


class _NeedsUser(ValueError):
    """A ValueError that must reach the user even from inside a runtime (never turned into a record)."""


class Runner:
    """A model prepared for one runtime. ``runner(x)`` binds the batch ``x`` and returns ``(call, output)``:
    ``call()`` runs the batch once (what is timed) and ``output(call())`` gives the result as a tensor.
    ``notes`` say how the runtime was set up."""

    def __init__(self, fn: Callable[[torch.Tensor], tuple[Callable[[], Any], Callable[[Any], torch.Tensor]]],
                 notes: list[str] | None = None):
        self.fn, self.notes = fn, notes or []

    def __call__(self, x: torch.Tensor):
        return self.fn(x)


def make_runner(model: nn.Module, input_shape: Sequence[int], *, runtime: str = "eager", device: str = "cpu",
                threads: int = 1, dtype: torch.dtype = torch.float32) -> Runner:
    """The :class:`Runner` that :func:`measure` times, for timing several runtimes side by side in one process
    (``benchmarks/latency_ratio.py``). ``model`` must already be in eval mode on ``device`` in ``dtype``;
    torch's thread count is the caller's to set, ``threads`` goes to ONNX Runtime. Outputs are not checked
    here: compare ``output(call())`` with eager yourself. Raises ``ValueError`` like :func:`measure`."""
    return _runtime_factory(runtime, check_device(device))(model, _check_shape(input_shape), dtype=dtype,
                                                           device=device, threads=threads)


def _torch_runner(model: nn.Module, *, memory_format=None, grad_mode=torch.inference_mode, notes=None) -> Runner:
    def prepare(x):
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)

        def call():
            with grad_mode():
                return model(x)

        return call, lambda y: y

    return Runner(prepare, notes)


def _eager(model, shape, **_) -> Runner:
    return _torch_runner(model)


def _folded(model, shape, **_) -> Runner:
    return _torch_runner(_fold(model), notes=["BatchNorm folded into convolutions"])


def _channels_last(model, shape, **_) -> Runner:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return _torch_runner(model, memory_format=torch.channels_last, notes=["weights and input in channels_last"])


def _compile(model, shape, **_) -> Runner:
    # A fresh dynamo cache per model: after its recompile limit dynamo silently runs eager, which
    # would time eager under the name "compile" in a sweep over many models.
    torch._dynamo.reset()
    compiled = torch.compile(model)
    return _torch_runner(compiled, grad_mode=torch.no_grad,
                         notes=[f"torch.compile (inductor), torch {torch.__version__}"])


def _onnxruntime(model, shape, *, dtype, device, threads) -> Runner:
    ort = _require_onnxruntime()
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    # Outputs are checked against eager at every batch size by measure(), so no second check here.
    with tempfile.TemporaryDirectory(prefix="compress-latency-") as folder:
        onnx_path = export_onnx(model, Path(folder) / "model.onnx", shape, fold_bn=True, verify=False)
        session = ort.InferenceSession(str(onnx_path), _ort_options(ort, threads=threads), providers=[provider])
    notes = [f"onnxruntime {ort.__version__} {provider}, BatchNorm folded, graph optimization ALL, "
             f"intra_op {threads}, inter_op 1, sequential, no spinning, I/O binding"]
    if dtype != torch.float32:
        notes.append(f"ONNX model runs in float32 (model is {str(dtype).replace('torch.', '')})")

    def prepare(x):
        binding = session.io_binding()
        xin = x.float().contiguous()
        if device == "cuda":
            binding.bind_output(OUTPUT_NAME, "cuda")

            def call():
                binding.bind_input(INPUT_NAME, "cuda", x.device.index or 0, _np_float32(), tuple(xin.shape),
                                   xin.data_ptr())
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                return binding

            return call, lambda b: torch.from_numpy(b.copy_outputs_to_cpu()[0])
        x_np = xin.numpy()
        out_shape = [x_np.shape[0], *session.get_outputs()[0].shape[1:]]
        out = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, _np_float32())
        binding.bind_ortvalue_output(OUTPUT_NAME, out)

        def call():
            binding.bind_cpu_input(INPUT_NAME, x_np)
            session.run_with_iobinding(binding)
            return out

        return call, lambda o: torch.from_numpy(o.numpy().copy())

    return Runner(prepare, notes)


def _cuda_graph(model, shape, **_) -> Runner:
    folded = _fold(model)

    def prepare(x):
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():  # warm-up off the capture stream, as capture requires
            for _ in range(3):
                folded(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = folded(static_in)

        def call():
            static_in.copy_(x)
            graph.replay()
            return static_out

        return call, lambda y: y.clone()

    return Runner(prepare, ["BatchNorm folded, captured as a CUDA graph, input copied in and graph replayed per call"])


_FACTORIES: dict[str, Callable[..., Runner]] = {
    "eager": _eager, "folded": _folded, "channels_last": _channels_last,
    "compile": _compile, "onnxruntime": _onnxruntime, "cuda_graph": _cuda_graph,
}


def _runtime_factory(runtime: str, device: str) -> Callable[..., Runner]:
    if runtime not in _FACTORIES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    if runtime == "cuda_graph" and device != "cuda":
        raise ValueError("runtime 'cuda_graph' needs device 'cuda'")
    if runtime == "onnxruntime":
        ort = _require_onnxruntime()
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("runtime 'onnxruntime' on cuda needs onnxruntime-gpu (no CUDAExecutionProvider; "
                             f"available: {', '.join(ort.get_available_providers())})")
    return _FACTORIES[runtime]


def _ort_options(ort, *, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads would keep burning CPU after a run and slow whatever is timed next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise _NeedsUser("runtime 'onnxruntime' needs the onnx extra: pip install 'compress[onnx]'") from None
    return onnxruntime


def _np_float32():
    import numpy as np

    return np.float32


# --------------------------------------------------------------------------------------------------
# Helpers


def _fold(model: nn.Module) -> nn.Module:
    """BatchNorm folded into convolutions by the one implementation in ``compress.quantize``."""
    from compress.quantize import fold_batchnorm

    return fold_batchnorm(model).eval()  # a folded copy; ``model`` is left as it was


def _torch_onnx_export(model: nn.Module, example: torch.Tensor, path: Path, *, opset: int, dynamic_batch: bool) -> None:
    """torch.onnx export. The TorchScript exporter (``dynamo=False``) needs nothing beyond torch and gives
    a plain graph on torch 2.11-2.13; if a torch drops it, the dynamo exporter (onnxscript) is used."""
    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=False, do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
                              **kwargs)
            return
        except Exception as legacy_exc:  # pragma: no cover - depends on the torch version
            legacy = legacy_exc
        try:  # pragma: no cover
            dims = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dims, verbose=False, **kwargs)
            program.save(str(path))
        except Exception as exc:  # pragma: no cover
            raise RuntimeError(f"ONNX export failed (TorchScript exporter: {legacy}; dynamo exporter: {exc})") from exc


def _load(model_or_artifact) -> tuple[nn.Module, list[str], torch.dtype | None]:
    """(model in eval mode, notes, stored dtype) from a module (copied) or an artifact path."""
    if isinstance(model_or_artifact, nn.Module):
        return copy.deepcopy(model_or_artifact).eval(), [], None
    if isinstance(model_or_artifact, (str, os.PathLike)):
        path = Path(model_or_artifact)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {str(path)!r} does not exist")
        from compress.artifact import load
        from compress.quantize import Codec

        model = load(path)  # float32 on CPU whatever the codec
        codec = Codec.from_json(model.artifact_manifest["codec"])
        stored = torch.float16 if codec.label == "fp16" else None
        return model.eval(), [f"artifact {path.name} ({codec.label})"], stored
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


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a sequence of ints like (1, 48, 48), not {input_shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input_shape {input_shape!r} must be one image's positive sizes, like (1, 48, 48)")
    return shape


def check_device(device: str) -> str:
    """Return ``device`` if it is "cpu", or "cuda" with CUDA available; else raise ``ValueError``."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available here (torch "
                         f"{torch.__version__}); use device='cpu'")
    return device


def _positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, not {value}")
    return value
