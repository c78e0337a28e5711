"""The OpenVINO latency runtimes (optional extra ``compress[openvino]``): ``openvino`` (the float model, float32)
and ``openvino_int8`` (an int8 artifact's stored weights in a QDQ ONNX graph, run by OpenVINO's int8 kernels).

OpenVINO reads the same ONNX files ONNX Runtime runs. Its CPU plugin turns each ``DequantizeLinear -> Conv ->
QuantizeLinear`` into one int8 oneDNN convolution (AVX-512 VNNI, AMX-INT8 where the CPU has them) with the
activation folded in as a post-op. Two settings matter on CPUs with AMX, both measured
(``benchmarks/README.md``): activations with negative values are quantized to int8 with zero point 0
(``Int8Config(activations="int8")``; with asymmetric uint8 OpenVINO inserts a convert and a zero-point
subtraction before every op reading them, which made int8 slower than float), and each batch size gets a
model compiled for that static shape (dynamic shapes send the fully connected layers to slower kernels).
Inference precision is pinned to float32: OpenVINO's default on CPUs with AMX-BF16 would run float ops in
bfloat16, which is not the model's float32.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compress.bench.registry import INT8_TOLERANCE, Runner, Runtime, register_runtime
from compress.int8.config import Int8Config
from compress.int8.prepare import calibration_batch, int8_source
from compress.int8.writer import export_int8_onnx
from compress.onnx import export_onnx, require_onnxruntime

__all__ = ["require_openvino", "openvino_float", "openvino_int8", "openvino_runner", "openvino_config"]


def require_openvino():
    """The ``openvino`` module, or ValueError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ValueError("runtime 'openvino' needs the openvino package: pip install 'compress[openvino]'") from None
    return openvino


def openvino_config(threads: int) -> dict:
    """CPU plugin settings: ``threads`` inference threads, one stream, latency mode, float32 for float ops, and
    no snippets (OpenVINO 2026.4's fused subgraphs returned all-zero logits for an int8 model with small outputs
    once compiled for a static shape; without them the outputs match ONNX Runtime's at the same speed, measured
    on both benchmark models)."""
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32", "SNIPPETS_MODE": "DISABLE"}


def openvino_runner(onnx_path: Path, threads: int, notes: list[str], tolerance: dict | None = None) -> Runner:
    """A :class:`Runner` for the ONNX file at ``onnx_path`` (read now): compiled for each bound batch's static
    shape, the input shared with the request (no copy), the output read from the request's tensor."""
    ov = require_openvino()
    core = ov.Core()
    model = core.read_model(str(onnx_path))

    def prepare(x: torch.Tensor):
        xin = np.ascontiguousarray(x.detach().float().cpu().numpy())
        model.reshape(list(xin.shape))
        request = core.compile_model(model, "CPU", openvino_config(threads)).create_infer_request()
        request.set_input_tensor(ov.Tensor(xin, shared_memory=True))

        def call():
            request.infer()
            return request

        return call, lambda r: torch.from_numpy(r.get_output_tensor().data.copy())

    device = core.get_property("CPU", "FULL_DEVICE_NAME")
    return Runner(prepare, [f"openvino {ov.__version__.split('-')[0]} CPU ({device}), {threads} thread(s), one stream, "
                            "static shape per batch size, float32 inference precision, no snippets", *notes],
                  tolerance=tolerance)


def openvino_float(model: nn.Module, shape: tuple[int, ...], *, threads: int) -> Runner:
    """``model`` (BatchNorm folded) exported to ONNX and run by OpenVINO in float32."""
    with tempfile.TemporaryDirectory(prefix="compress-openvino-") as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", shape, fold_bn=True, verify=False)
        return openvino_runner(path, threads, ["BatchNorm folded"])


def openvino_int8(model: nn.Module, shape: tuple[int, ...], *, threads: int, weights=None,
                  calibration: torch.Tensor | None = None, config: Int8Config = Int8Config(activations="int8")
                  ) -> Runner:
    """The int8 QDQ ONNX file of ``model`` (as :func:`compress.bench.int8.onnxruntime_int8` builds it, with
    activations that go below zero in symmetric int8 by default) run by OpenVINO."""
    require_onnxruntime()   # calibration runs the float graph in ONNX Runtime
    model, weights, notes = int8_source(model, weights)
    images, note = calibration_batch(calibration, shape)
    with tempfile.TemporaryDirectory(prefix="compress-openvino-int8-") as folder:
        export = export_int8_onnx(model, weights, Path(folder) / "int8.onnx", shape, images,
                                  config=dataclasses.replace(config, calibration_images=len(images)))
        return openvino_runner(export.path, threads, ["int8 QDQ graph", *notes, *export.notes(), note],
                               tolerance=INT8_TOLERANCE)


def _openvino(model, shape, *, dtype, device, threads) -> Runner:
    return openvino_float(model, shape, threads=threads)


def _openvino_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    return openvino_int8(model, shape, threads=threads, weights=weights, calibration=calibration)


# both read the ONNX export, and openvino_int8 calibrates in ONNX Runtime: onnxruntime is needed too
for _record in (Runtime("openvino", _openvino, needs=("openvino", "onnxruntime"), extra="openvino"),
                Runtime("openvino_int8", _openvino_int8, kind="int8", needs=("openvino", "onnxruntime"),
                        extra="openvino")):
    register_runtime(_record)
