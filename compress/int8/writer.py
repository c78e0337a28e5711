"""The int8 QDQ ONNX writer: a float model whose conv/linear weights are stored int8 values times their scales, as
a QDQ graph ONNX Runtime and OpenVINO run with int8 kernels.

The weights are the given int8 values and scales exactly (an artifact's, :mod:`compress.int8.weights`; not
quantized again); activation ranges come from calibration inputs run through the float graph
(:mod:`compress.int8.calibrate`); :mod:`compress.int8.qdq` rewrites the graph.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress import _io
from compress.int8.calibrate import RangeCalibrator, calibration_batch_size
from compress.int8.config import Int8Config
from compress.int8.qdq import WEIGHT_OPS, activation_tensors, quantize_graph
from compress.onnx import INPUT_NAME, export_onnx, ort_session_options, require_onnxruntime
from compress.quant.linear import dequantize_linear, quantize_linear

__all__ = ["Int8Export", "export_int8_onnx"]


@dataclass
class Int8Export:
    """What :func:`export_int8_onnx` wrote: the path, the int8 weights taken as stored and those quantized here."""

    path: Path
    stored: list[str]              # weights whose int8 values and scales are the artifact's
    quantized_here: list[str]      # weights the artifact keeps in float (too small): quantized per channel here
    calibration: str
    calibration_images: int
    activations: str = "uint8"     # Int8Config.activations: uint8, or int8 for tensors with negative values

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "path": str(self.path)}

    def notes(self) -> list[str]:
        out = [f"int8 QDQ: {len(self.stored)} weights as stored, activations {self.activations} calibrated "
               f"({self.calibration}) on {self.calibration_images} images"]
        if self.quantized_here:
            out.append(f"{len(self.quantized_here)} small weights kept in float by the codec quantized per channel "
                       f"for execution")
        return out


def export_int8_onnx(model: nn.Module, weights: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     path: str | os.PathLike, input_shape: Sequence[int], calibration: torch.Tensor, *,
                     config: Int8Config = Int8Config()) -> Int8Export:
    """Write ``model`` (float, BatchNorm folded: an artifact's float decode) as a QDQ int8 ONNX file at ``path``.

    ``weights`` (:func:`compress.int8.weights.int8_weights`) give the int8 values and scales of the weights the artifact stores in int8;
    conv/linear weights it keeps in float (fewer values than the codec's ``min_numel``) are quantized per channel
    here and listed. ``calibration`` is a float batch of model inputs (normalized images); the first
    ``config.calibration_images`` set the activation ranges. The write is atomic. Raises ValueError for a
    calibration batch of the wrong shape and when onnxruntime is missing.
    """
    ort = require_onnxruntime()
    import onnx

    images = _calibration_images(calibration, input_shape, config.calibration_images)
    with tempfile.TemporaryDirectory(prefix="compress-int8-") as folder:
        float_path = export_onnx(model, Path(folder) / "float.onnx", input_shape, fold_bn=True)
        float_model = onnx.load(str(float_path))
    init_names = {i.name for i in float_model.graph.initializer}
    op_weights = [n.input[1] for n in float_model.graph.node
                  if n.op_type in WEIGHT_OPS and len(n.input) > 1 and n.input[1] in init_names]
    stored = {k: v for k, v in weights.items() if k in op_weights}
    here = [w for w in op_weights if w not in stored]
    for init in float_model.graph.initializer:
        if init.name in stored:
            _check_stored(init.name, onnx.numpy_helper.to_array(init), *stored[init.name])
        elif init.name in here:
            q, scale = quantize_linear(torch.from_numpy(onnx.numpy_helper.to_array(init).copy()),
                                     scale_dtype=torch.float32)
            stored[init.name] = (q.numpy(), scale.numpy())
    ranges = _activation_ranges(ort, float_model, images, config)
    qdq = quantize_graph(float_model, stored, ranges, signed=config.activations == "int8")
    _io.write_bytes(path, qdq.SerializeToString())
    return Int8Export(Path(path), sorted(set(stored) - set(here)), sorted(here), config.calibration, len(images),
                      config.activations)


def _check_stored(name: str, value: np.ndarray, q: np.ndarray, scale: np.ndarray) -> None:
    """The graph's float weight must be exactly ``q * scale`` (what the artifact decodes to): otherwise the int8
    file would not run the stored numbers (BatchNorm folded after quantization, say)."""
    want = dequantize_linear(torch.from_numpy(np.asarray(q)), torch.from_numpy(np.asarray(scale))).numpy()
    if value.shape != want.shape or not np.array_equal(value, want):
        raise ValueError(f"weight {name!r} in the graph is not the artifact's int8 values times their scales; "
                         "int8 execution needs BatchNorm folded before quantization (--codec int8 --fold-bn)")


def _calibration_images(x: torch.Tensor, input_shape: Sequence[int], count: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"calibration images must be a float tensor of model inputs, not {type(x).__name__}")
    if tuple(x.shape[1:]) != tuple(input_shape) or len(x) == 0:
        raise ValueError(f"calibration images have shape {tuple(x.shape)}, expected (N, "
                         f"{', '.join(map(str, input_shape))}) with N >= 1")
    return x[:count].detach().float().cpu().contiguous()


def _activation_ranges(ort, float_model, images: torch.Tensor, config: Int8Config) -> dict[str, tuple[float, float]]:
    """Each activation's calibrated range: the float graph run with every activation as an extra output, a few
    images at a time (:func:`compress.int8.calibrate.calibration_batch_size`: every activation of a batch is held
    at once)."""
    import onnx

    names = activation_tensors(float_model)
    probe = onnx.ModelProto()
    probe.CopyFrom(float_model)
    outputs = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in outputs)
    session = ort.InferenceSession(probe.SerializeToString(), ort_session_options(ort, threads=1),
                                   providers=["CPUExecutionProvider"])
    fetch = [n for n in names if n != INPUT_NAME]
    calibrator = RangeCalibrator(config.calibration, percentile=config.percentile)
    batch_size = calibration_batch_size(images.shape[1:])
    while True:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].numpy()
            calibrator.observe({INPUT_NAME: x, **dict(zip(fetch, session.run(fetch, {INPUT_NAME: x})))})
        calibrator.end_pass()
        if not calibrator.needs_second_pass:
            return calibrator.ranges()
