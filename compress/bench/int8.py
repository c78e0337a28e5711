"""The int8 latency runtimes (CPU): ``onnxruntime_int8`` (a QDQ ONNX file, :mod:`compress.int8.writer`, in an ONNX
Runtime session) and ``torch_int8`` (torch's own x86 int8 kernels, FX graph mode: ``prepare_fx``/``convert_fx``,
fbgemm/oneDNN).

Both run the weights an int8 artifact stores: given ``weights`` (an int8 artifact's values and scales, what
:func:`compress.bench.latency.measure` passes for such an artifact) they use those exactly; given a float model they
first apply what ``compress export --codec int8 --fold-bn`` writes (:func:`compress.int8.int8_source`). Activation
ranges come from ``calibration`` (model inputs) or, without it, from N(0, 1) random inputs, and the records say
which. Outputs are checked against eager at ``INT8_TOLERANCE`` (20% of the largest output): a sanity check, since
``compress export --int8`` checks accuracy.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from compress.bench.ort import ort_runner
from compress.bench.registry import INT8_TOLERANCE, Runner, Runtime, register_runtime
from compress.bench.torch_runtimes import torch_runner
from compress.int8.calibrate import calibration_batch_size
from compress.int8.config import Int8Config
from compress.int8.prepare import calibration_batch, int8_source
from compress.int8.writer import export_int8_onnx
from compress.onnx import ort_session_options, require_onnxruntime

__all__ = ["onnxruntime_int8", "torch_int8", "torch_int8_engine"]


def onnxruntime_int8(model: nn.Module, shape: tuple[int, ...], *, threads: int, weights: Mapping | None = None,
                     calibration: torch.Tensor | None = None, config: Int8Config = Int8Config()) -> Runner:
    """The int8 QDQ ONNX file of ``model`` in an ONNX Runtime CPU session (settings as the ``onnxruntime``
    runtime's); ONNX Runtime fuses the Q/DQ pairs into int8 kernels (QLinearConv, QGemm...)."""
    ort = require_onnxruntime()
    model, weights, notes = int8_source(model, weights)
    images, note = calibration_batch(calibration, shape)
    with tempfile.TemporaryDirectory(prefix="compress-int8-") as folder:
        export = export_int8_onnx(model, weights, Path(folder) / "int8.onnx", shape, images,
                                  config=dataclasses.replace(config, calibration_images=len(images)))
        session = ort.InferenceSession(str(export.path), ort_session_options(ort, threads=threads),
                                       providers=["CPUExecutionProvider"])
    notes = [f"onnxruntime {ort.__version__} CPUExecutionProvider, int8 QDQ graph, graph optimization ALL, "
             f"intra_op {threads}, I/O binding", *notes, *export.notes(), note]
    return ort_runner(ort, session, "cpu", notes, tolerance=INT8_TOLERANCE)


def torch_int8(model: nn.Module, shape: tuple[int, ...], *, weights: Mapping | None = None,
               calibration: torch.Tensor | None = None) -> Runner:
    """``model`` through torch's FX graph-mode quantization on the x86 engine (quint8 activations from
    min/max observers, qint8 weights per channel), then the int8 weights overwritten with ``weights``' exact
    values and scales, so both int8 runtimes run the same stored numbers. Activations use 7 bits
    (``reduce_range``, torch's x86 default): its non-VNNI kernels add u8 x s8 pairs in int16, which saturates at 8."""
    import warnings

    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver, QConfig, QConfigMapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine, previous = _engine(), torch.backends.quantized.engine
    model, weights, notes = int8_source(model, weights)
    images, note = calibration_batch(calibration, shape)
    qconfig = QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=True),
                      weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, quant_min=-127, quant_max=127,
                                                                qscheme=torch.per_channel_symmetric))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch.ao.quantization's deprecation notices
        torch.backends.quantized.engine = engine   # weights are packed for the engine set now
        try:
            prepared = prepare_fx(model, QConfigMapping().set_global(qconfig), (images[:1],))
            step = calibration_batch_size(shape)   # a few large images at a time: activations grow with pixels
            with torch.no_grad():
                for start in range(0, len(images), step):
                    prepared(images[start:start + step])
            quantized = convert_fx(prepared)
            replaced = _set_int8_weights(quantized, weights)
        finally:
            torch.backends.quantized.engine = previous
    return Runner(torch_runner(quantized).fn,
                  [f"torch {torch.__version__} FX int8, engine {engine}, activations quint8 in a 7-bit range (min/max)",
                   *notes, f"{replaced} weights set to the stored int8 values and scales", note],
                  quantized, tolerance=INT8_TOLERANCE)


def torch_int8_engine() -> str | None:
    """torch's quantized engine for x86 CPUs (x86 picks fbgemm or oneDNN per op), or None."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "onednn") if e in engines), None)


def _set_int8_weights(quantized: nn.Module, weights: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Give each quantized conv/linear of ``quantized`` the stored int8 weight of the same name; returns the count."""
    count = 0
    for name, module in quantized.named_modules():
        key = f"{name}.weight"
        if key not in weights or not hasattr(module, "set_weight_bias"):
            continue
        q, scale = (torch.from_numpy(np.asarray(a)) for a in weights[key])
        scale = scale.double().reshape(-1)
        if scale.numel() == 1:
            qw = torch._make_per_tensor_quantized_tensor(q, scale.item(), 0)
        else:
            qw = torch._make_per_channel_quantized_tensor(q, scale, torch.zeros(len(scale), dtype=torch.long), 0)
        module.set_weight_bias(qw, module.bias())
        count += 1
    return count


def _onnxruntime_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    return onnxruntime_int8(model, shape, threads=threads, weights=weights, calibration=calibration)


def _torch_int8(model, shape, *, dtype, device, threads, weights=None, calibration=None) -> Runner:
    return torch_int8(model, shape, weights=weights, calibration=calibration)


def _x86_engine(device: str) -> None:
    _engine()


def _engine() -> str:
    """:func:`torch_int8_engine`; ValueError naming the engines this torch has when none fits."""
    engine = torch_int8_engine()
    if not engine:
        raise ValueError(f"runtime 'torch_int8' needs torch's x86, fbgemm or onednn quantized engine; this torch has "
                         f"{', '.join(torch.backends.quantized.supported_engines)}")
    return engine


for _record in (Runtime("onnxruntime_int8", _onnxruntime_int8, kind="int8", needs=("onnxruntime",), extra="onnx"),
                Runtime("torch_int8", _torch_int8, kind="int8", check=_x86_engine)):
    register_runtime(_record)
