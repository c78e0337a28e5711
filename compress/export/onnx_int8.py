"""int8 ONNX: a model as an int8 artifact stores it, in the QDQ format ONNX Runtime runs with int8 kernels.

The weights are the artifact's int8 values and scales exactly (not quantized again); activation ranges come from
calibration images run through the float graph (:mod:`compress.quant.calibrate`); :func:`check_int8` compares
the int8 file's predictions with the artifact's float decode. What ``compress export RUN --onnx F --int8`` and
the ``onnxruntime_int8`` latency runtime use.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress import _io
from compress.export.onnx import INPUT_NAME, export_onnx, ort_session_options, require_onnxruntime
from compress.export.qdq import WEIGHT_OPS, activation_tensors, quantize_graph
from compress.quant.calibrate import CALIBRATION_METHODS, RangeCalibrator
from compress.quant.codecs import Codec, Encoded
from compress.quant.linear import dequantize_linear, quantize_linear

__all__ = ["ACTIVATION_TYPES", "Int8Config", "Int8Export", "Int8Check", "INT8_CODECS", "int8_weights", "export_int8_onnx",
           "check_int8", "Int8CheckError", "training_images", "export_int8_artifact"]

INT8_CODECS = ("int8", "int8-tensor")   # codecs whose artifacts have an int8 execution path
ACTIVATION_TYPES = ("uint8", "int8")     # how activations with negative values are quantized


@dataclass(frozen=True)
class Int8Config:
    """How an int8 ONNX file is calibrated and checked."""

    calibration: str = "minmax"        # activation ranges: minmax | percentile | entropy (compress.quant.calibrate)
    percentile: float = 99.99          # percentile method: share of values (%) inside the range
    calibration_images: int = 512      # training images (count) the activation ranges are taken from
    min_agreement: float = 0.99        # share of predictions (0..1) that must equal the float decode's
    max_drop_points: float = 1.0       # accuracy may fall at most this many points below the float decode
    activations: str = "uint8"         # signed tensors: uint8 (asymmetric) | int8 (symmetric, zero point 0;
                                       # what OpenVINO's int8 kernels take without a zero-point subtraction)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration {self.calibration!r}; known: {', '.join(CALIBRATION_METHODS)}")
        if self.activations not in ACTIVATION_TYPES:
            raise ValueError(f"unknown activations {self.activations!r}; known: {', '.join(ACTIVATION_TYPES)}")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be at least 1, got {self.calibration_images}")
        if not 0.0 <= self.min_agreement <= 1.0 or self.max_drop_points < 0:
            raise ValueError("min_agreement must be in [0, 1] and max_drop_points >= 0")


@dataclass
class Int8Export:
    """What :func:`export_int8_onnx` wrote: the path, the int8 weights taken as stored and those quantized here."""

    path: Path
    stored: list[str]              # weights whose int8 values and scales are the artifact's
    quantized_here: list[str]      # weights the artifact keeps in float (too small): quantized per channel here
    calibration: str
    calibration_images: int
    activations: str = "uint8"     # Int8Config.activations: uint8, or int8 for tensors with negative values

    def notes(self) -> list[str]:
        out = [f"int8 QDQ: {len(self.stored)} weights as stored, activations {self.activations} calibrated "
               f"({self.calibration}) on {self.calibration_images} images"]
        if self.quantized_here:
            out.append(f"{len(self.quantized_here)} small weights kept in float by the codec quantized per channel "
                       f"for execution")
        return out


def int8_weights(codec: Codec | Mapping, encoded: Mapping[str, Encoded], *, source: str = "artifact"
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{state_dict name: (q int8, scale float32)}`` of an artifact's int8 tensors. Raises ValueError naming
    the codecs that have an int8 execution path when ``codec`` is not one of them."""
    codec = codec if isinstance(codec, Codec) else Codec.from_json(codec)
    if codec.label not in INT8_CODECS:
        raise ValueError(f"{source}: codec {codec.label} has no int8 execution path; supported: "
                         f"{', '.join(INT8_CODECS)} (export with --codec int8 --fold-bn)")
    return {name: (enc.arrays["data"].reshape(enc.shape).numpy().astype(np.int8),
                   enc.arrays["scale"].to(torch.float32).numpy())
            for name, enc in encoded.items() if enc.kind == "int8"}


def export_int8_onnx(model: nn.Module, weights: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     path: str | os.PathLike, input_shape: Sequence[int], calibration: torch.Tensor, *,
                     config: Int8Config = Int8Config()) -> Int8Export:
    """Write ``model`` (float, BatchNorm folded: an artifact's float decode) as a QDQ int8 ONNX file at ``path``.

    ``weights`` (:func:`int8_weights`) give the int8 values and scales of the weights the artifact stores in int8;
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


def training_images(x: torch.Tensor, count: int, normalizer, *, seed: int = 0) -> torch.Tensor:
    """``count`` of the uint8 training images ``x``, drawn seeded, through ``normalizer`` (the run's) as the
    model sees them."""
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:count]
    return normalizer(x[index])


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


def _activation_ranges(ort, float_model, images: torch.Tensor, config: Int8Config, batch_size: int = 64
                       ) -> dict[str, tuple[float, float]]:
    """Each activation's calibrated range: the float graph run with every activation as an extra output."""
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
    while True:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].numpy()
            calibrator.observe({INPUT_NAME: x, **dict(zip(fetch, session.run(fetch, {INPUT_NAME: x})))})
        calibrator.end_pass()
        if not calibrator.needs_second_pass:
            return calibrator.ranges()


class Int8CheckError(ValueError):
    """The int8 file's predictions disagree with the float decode beyond :class:`Int8Config`'s limits."""


@dataclass
class Int8Check:
    """Predictions of the int8 ONNX file against the float decode on one labeled split."""

    images: int
    agreement: float            # share (0..1) of images where both predict the same class
    int8_accuracy: float        # percent
    float_accuracy: float       # percent
    passed: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"int8 vs float decode on {self.images} images: {100 * self.agreement:.2f}% same predictions, "
                f"accuracy {self.int8_accuracy:.2f}% vs {self.float_accuracy:.2f}% "
                f"({self.int8_accuracy - self.float_accuracy:+.2f} points)")


def check_int8(path: str | os.PathLike, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               config: Int8Config = Int8Config(), raise_on_failure: bool = True) -> Int8Check:
    """Run the int8 file at ``path`` and the float ``model`` on inputs ``x`` (normalized) with labels ``y``;
    passed when the predictions agree on at least ``config.min_agreement`` of the images and accuracy falls by
    at most ``config.max_drop_points``. Raises :class:`Int8CheckError` (a ValueError) when it fails, unless
    ``raise_on_failure`` is False."""
    from compress.train.inference import logits

    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), ort_session_options(ort, threads=1), providers=["CPUExecutionProvider"])
    x = x.detach().float().cpu()
    int8_pred = torch.cat([torch.from_numpy(session.run(None, {INPUT_NAME: x[i:i + 256].numpy()})[0])
                           for i in range(0, len(x), 256)]).argmax(1)
    float_pred = logits(model, x).argmax(1)
    y = y.cpu()
    result = Int8Check(len(y), (int8_pred == float_pred).float().mean().item(),
                       100 * (int8_pred == y).float().mean().item(), 100 * (float_pred == y).float().mean().item(),
                       passed=False)
    result.passed = (result.agreement >= config.min_agreement
                     and result.float_accuracy - result.int8_accuracy <= config.max_drop_points)
    if raise_on_failure and not result.passed:
        raise Int8CheckError(f"{path}: {result.summary()}; needs >= {100 * config.min_agreement:g}% and at most "
                             f"{config.max_drop_points:g} points lower (try the other calibration method)")
    return result


def export_int8_artifact(artifact: str | os.PathLike, path: str | os.PathLike, calibration: torch.Tensor,
                         x: torch.Tensor, y: torch.Tensor, *, config: Int8Config = Int8Config()
                         ) -> tuple[Int8Export, Int8Check]:
    """The int8 artifact at ``artifact`` as a QDQ ONNX file at ``path``, checked before it is moved into place.

    ``calibration``: normalized training images; ``x``, ``y``: the normalized images and labels the file is
    checked on against the artifact's float decode (:func:`check_int8`). Raises ValueError when the artifact's
    codec has no int8 execution path (naming those that do) or its BatchNorm was not folded before
    quantization, and :class:`Int8CheckError` when the check fails (nothing is written then).
    """
    from compress.export.artifact import read, restore

    manifest, encoded = read(artifact)
    weights = int8_weights(manifest["codec"], encoded, source=str(artifact))
    model = restore(manifest, encoded, source=artifact)
    shape = tuple(x.shape[1:])
    with _io.atomic_path(path) as tmp:
        export = export_int8_onnx(model, weights, tmp, shape, calibration, config=config)
        try:
            check = check_int8(tmp, model, x, y, config=config)
        except Int8CheckError as exc:   # name the file the user asked for, not the temporary one
            raise Int8CheckError(str(exc).replace(str(tmp), str(path))) from None
    export.path = Path(path)
    return export, check
