"""The ``onnxruntime`` runtime (optional extra ``compress[onnx]``): BatchNorm folded, exported with
:func:`compress.onnx.export_onnx`, run by an ONNX Runtime session with full graph optimization, ``intra_op`` threads
= the thread count, ``inter_op`` 1, sequential execution, no spinning, and I/O binding into a preallocated output
(the input rebound every call). On CUDA it needs onnxruntime-gpu's CUDA provider. :func:`ort_runner` also runs the
int8 QDQ files of ``onnxruntime_int8``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from compress.bench.registry import Runner, Runtime, register_runtime
from compress.onnx import INPUT_NAME, OUTPUT_NAME, export_onnx, ort_session_options, require_onnxruntime

__all__ = ["ort_runner"]


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
                binding.bind_input(INPUT_NAME, "cuda", x.device.index or 0, np.float32, tuple(xin.shape),
                                   xin.data_ptr())
                session.run_with_iobinding(binding)
                binding.synchronize_outputs()
                return binding

            return call, lambda b: torch.from_numpy(b.copy_outputs_to_cpu()[0])
        x_np = xin.numpy()
        out_shape = [x_np.shape[0], *session.get_outputs()[0].shape[1:]]
        out = ort.OrtValue.ortvalue_from_shape_and_type(out_shape, np.float32)
        binding.bind_ortvalue_output(OUTPUT_NAME, out)

        def call():
            binding.bind_cpu_input(INPUT_NAME, x_np)
            session.run_with_iobinding(binding)
            return out

        return call, lambda o: torch.from_numpy(o.numpy().copy())

    return Runner(prepare, notes, tolerance=tolerance)


def _cuda_provider(device: str) -> None:
    """On CUDA, onnxruntime-gpu's CUDA execution provider must be there."""
    if device == "cuda":
        ort = require_onnxruntime()
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("runtime 'onnxruntime' on cuda needs onnxruntime-gpu (no CUDAExecutionProvider; "
                             f"available: {', '.join(ort.get_available_providers())})")


register_runtime(Runtime("onnxruntime", _onnxruntime, devices=("cpu", "cuda"), needs=("onnxruntime",), extra="onnx",
                         check=_cuda_provider))
