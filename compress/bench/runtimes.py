"""Runtimes a model can be timed in: each prepares a model and returns a :class:`Runner`.

A factory takes ``(model, shape, *, dtype, device, threads)``; ``runner(x)`` binds a batch and returns
``(call, output)``: ``call()`` runs the batch once (what is timed) and ``output(call())`` gives a torch tensor.
A factory that also declares ``weights`` (an int8 artifact's exact int8 values and scales) or ``calibration``
(model inputs to take activation ranges from) gets them (:func:`call_factory`); the int8 runtimes do.
"""

from __future__ import annotations

import copy
import inspect
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from compress.device import resolve_device
from compress.export.onnx import (INPUT_NAME, OUTPUT_NAME, check_input_shape, export_onnx, ort_session_options,
                                  require_onnxruntime)
from compress.models.fold import fold_batchnorm

__all__ = ["RUNTIMES", "RUNTIME_FACTORIES", "INT8_RUNTIMES", "CPU_ONLY_RUNTIMES", "register_runtime", "Runner", "torch_runner",
           "make_runner", "runtime_factory", "call_factory", "check_runtime", "available_runtimes", "ort_runner",
           "torch_int8_engine",
           "OutputMismatchError", "tolerance", "INT8_TOLERANCE"]

RUNTIMES = ("eager", "folded", "channels_last", "compile", "onnxruntime", "openvino", "cuda_graph",
            "onnxruntime_int8", "torch_int8", "openvino_int8", "cuda_graph_fp16", "cuda_graph_bf16")
INT8_RUNTIMES = ("onnxruntime_int8", "torch_int8", "openvino_int8")
CPU_ONLY_RUNTIMES = ("openvino", *INT8_RUNTIMES)
# int8 outputs against eager float32: a sanity check that the int8 graph computes the model (errors of 1-10%
# of the largest logit are normal: torch's x86 kernels use 7-bit activations; a broken graph is off by the whole
# range); the accuracy check is compress.export.onnx_int8.check_int8's.
INT8_TOLERANCE = {"rtol": 0.2, "atol": 1e-5}


class OutputMismatchError(RuntimeError):
    """A runtime's outputs disagree with eager PyTorch's beyond the tolerance (it then gets no time)."""


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """The ``rtol``/``atol`` a runtime's outputs must meet against eager for inputs of ``dtype``."""
    if dtype == torch.bfloat16:   # 8 significant bits (fp16 has 11): errors through a network are ~1%
        return {"rtol": 5e-2, "atol": 5e-3}
    return {"rtol": 1e-2, "atol": 1e-3} if dtype == torch.float16 else {"rtol": 1e-3, "atol": 1e-4}


def check_runtime(runtime: str, device: str = "cpu") -> None:
    """Raise ``ValueError`` unless ``runtime`` can run here on ``device`` (unknown runtime or device, CUDA
    not available, onnxruntime or its CUDA provider not installed)."""
    runtime_factory(runtime, resolve_device(device).type)


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


class Runner:
    """A model prepared for one runtime. ``runner(x)`` binds the batch ``x`` and returns ``(call, output)``:
    ``call()`` runs the batch once (what is timed) and ``output(call())`` gives the result as a tensor.
    ``notes`` say how the runtime was set up."""

    def __init__(self, fn: Callable[[torch.Tensor], tuple[Callable[[], Any], Callable[[Any], torch.Tensor]]],
                 notes: list[str] | None = None, model: nn.Module | None = None,
                 tolerance: dict[str, float] | None = None):
        self.fn, self.notes, self.model = fn, notes or [], model   # model: the module run (None for ONNX Runtime)
        self.tolerance = tolerance   # rtol/atol against eager when not the input dtype's (int8, half on CUDA)

    def __call__(self, x: torch.Tensor):
        return self.fn(x)


def make_runner(model: nn.Module, input_shape: Sequence[int], *, runtime: str = "eager", device: str = "cpu",
                threads: int = 1, dtype: torch.dtype = torch.float32, weights=None,
                calibration: torch.Tensor | None = None) -> Runner:
    """The :class:`Runner` that :func:`measure` times, for timing several runtimes side by side in one process
    (``benchmarks/latency_ratio.py``). ``model`` must already be in eval mode on ``device`` in ``dtype``;
    torch's thread count is the caller's to set, ``threads`` goes to ONNX Runtime. ``weights`` and
    ``calibration`` go to the int8 runtimes (see :func:`compress.bench.int8.int8_source`). Outputs are not
    checked here: compare ``output(call())`` with eager yourself. Raises ``ValueError`` like :func:`measure`."""
    device = resolve_device(device).type
    return call_factory(runtime_factory(runtime, device), model, check_input_shape(input_shape), dtype=dtype,
                        device=device, threads=threads, weights=weights, calibration=calibration)


def call_factory(factory: Callable[..., Runner], model: nn.Module, shape: tuple[int, ...], *, dtype, device,
                 threads, **context) -> Runner:
    """``factory(model, shape, dtype=, device=, threads=)`` plus those ``context`` entries (``weights``,
    ``calibration``) that are not None and that the factory declares (or takes as ``**kwargs``)."""
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in context.items() if v is not None and (k in params or takes_all)}
    return factory(model, shape, dtype=dtype, device=device, threads=threads, **extra)


def torch_runner(model: nn.Module, *, memory_format=None, grad_mode=torch.inference_mode, notes=None) -> Runner:
    """A runner calling ``model`` under ``grad_mode``, the input in ``memory_format`` when given."""
    def prepare(x):
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)

        def call():
            with grad_mode():
                return model(x)

        return call, lambda y: y

    return Runner(prepare, notes, model)


def _eager(model, shape, **_) -> Runner:
    return torch_runner(model)


def _folded(model, shape, **_) -> Runner:
    return torch_runner(_fold(model), notes=["BatchNorm folded into convolutions"])


def _channels_last(model, shape, **_) -> Runner:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return torch_runner(model, memory_format=torch.channels_last, notes=["weights and input in channels_last"])


def _compile(model, shape, **_) -> Runner:
    # A fresh dynamo cache per model: after its recompile limit dynamo silently runs eager, which
    # would time eager under the name "compile" in a sweep over many models.
    torch._dynamo.reset()
    compiled = torch.compile(model)
    return torch_runner(compiled, grad_mode=torch.no_grad,
                         notes=[f"torch.compile (inductor), torch {torch.__version__}"])


def _onnxruntime(model, shape, *, dtype, device, threads) -> Runner:
    ort = require_onnxruntime()
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    # Outputs are checked against eager at every batch size by measure(), so no second check here.
    with tempfile.TemporaryDirectory(prefix="compress-latency-") as folder:
        onnx_path = export_onnx(model, Path(folder) / "model.onnx", shape, fold_bn=True, verify=False)
        session = ort.InferenceSession(str(onnx_path), ort_session_options(ort, threads=threads), providers=[provider])
    notes = [f"onnxruntime {ort.__version__} {provider}, BatchNorm folded, graph optimization ALL, "
             f"intra_op {threads}, inter_op 1, sequential, no spinning, I/O binding"]
    if dtype != torch.float32:
        notes.append(f"ONNX model runs in float32 (model is {str(dtype).replace('torch.', '')})")
    return ort_runner(ort, session, device, notes)


def ort_runner(ort, session, device: str, notes: list[str], tolerance: dict[str, float] | None = None) -> Runner:
    """A :class:`Runner` for an ONNX Runtime ``session`` (input ``input``, output ``logits``): I/O binding, on
    CPU into a preallocated output with the input rebound every call, on CUDA with device pointers."""
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

    return Runner(prepare, notes, tolerance=tolerance)


def _cuda_graph(model, shape, **_) -> Runner:
    from compress.bench.cuda_graph import cuda_graph_runner

    return cuda_graph_runner(_fold(model), None)


def _cuda_graph_half(half: torch.dtype):
    def factory(model, shape, **_) -> Runner:
        from compress.bench.cuda_graph import cuda_graph_runner

        return cuda_graph_runner(_fold(model).to(half), half)
    return factory


def _onnxruntime_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    from compress.bench.int8 import onnxruntime_int8

    return onnxruntime_int8(model, shape, threads=threads, weights=weights, calibration=calibration)


def _torch_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    from compress.bench.int8 import torch_int8

    return torch_int8(model, shape, weights=weights, calibration=calibration)


def _openvino(model, shape, *, dtype, device, threads) -> Runner:
    from compress.bench.openvino import openvino_float

    return openvino_float(model, shape, threads=threads)


def _openvino_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    from compress.bench.openvino import openvino_int8

    return openvino_int8(model, shape, threads=threads, weights=weights, calibration=calibration)


RUNTIME_FACTORIES: dict[str, Callable[..., Runner]] = {
    "eager": _eager, "folded": _folded, "channels_last": _channels_last,
    "compile": _compile, "onnxruntime": _onnxruntime, "cuda_graph": _cuda_graph,
    "onnxruntime_int8": _onnxruntime_int8, "torch_int8": _torch_int8,
    "openvino": _openvino, "openvino_int8": _openvino_int8,
    "cuda_graph_fp16": _cuda_graph_half(torch.float16), "cuda_graph_bf16": _cuda_graph_half(torch.bfloat16),
}


def runtime_factory(runtime: str, device: str) -> Callable[..., Runner]:
    """The factory of ``runtime`` on ``device`` ("cpu" or "cuda"); ValueError if it cannot run here."""
    if runtime not in RUNTIME_FACTORIES:
        raise ValueError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIME_FACTORIES)}")
    if runtime.startswith("cuda_graph") and device != "cuda":
        raise ValueError(f"runtime {runtime!r} needs device 'cuda'")
    if runtime == "cuda_graph_bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"runtime 'cuda_graph_bf16' needs a GPU with bfloat16 ({torch.cuda.get_device_name()} has none)")
    if runtime in CPU_ONLY_RUNTIMES and device != "cpu":
        raise ValueError(f"runtime {runtime!r} runs on the CPU only (device 'cpu'), not {device!r}")
    if runtime == "torch_int8" and not torch_int8_engine():
        raise ValueError(f"runtime 'torch_int8' needs torch's x86, fbgemm or onednn quantized engine; this torch has "
                         f"{', '.join(torch.backends.quantized.supported_engines)}")
    if runtime in ("onnxruntime_int8", "openvino", "openvino_int8"):
        require_onnxruntime()   # openvino reads the ONNX export; openvino_int8 calibrates in ONNX Runtime
    if runtime.startswith("openvino"):
        from compress.bench.openvino import require_openvino

        require_openvino()
    if runtime == "onnxruntime":
        ort = require_onnxruntime()
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("runtime 'onnxruntime' on cuda needs onnxruntime-gpu (no CUDAExecutionProvider; "
                             f"available: {', '.join(ort.get_available_providers())})")
    return RUNTIME_FACTORIES[runtime]


def register_runtime(name: str, factory: Callable[..., Runner]) -> Callable[..., Runner]:
    """Add a runtime: ``factory(model, shape, *, dtype, device, threads) -> Runner``. A taken name raises."""
    if name in RUNTIME_FACTORIES:
        raise ValueError(f"runtime {name!r} is already registered")
    RUNTIME_FACTORIES[name] = factory
    return factory


def torch_int8_engine() -> str | None:
    """torch's quantized engine for x86 CPUs (x86 picks fbgemm or oneDNN per op), or None."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "onednn") if e in engines), None)


def _np_float32():
    import numpy as np

    return np.float32


def _fold(model: nn.Module) -> nn.Module:
    """BatchNorm folded into convolutions by the one implementation, ``compress.models.fold_batchnorm``."""
    return fold_batchnorm(model).eval()  # a folded copy; ``model`` is left as it was
