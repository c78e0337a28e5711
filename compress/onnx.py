"""Float ONNX plumbing: a verified, atomically written ``.onnx`` file, and the ONNX Runtime session settings compress
uses. Shared by :mod:`compress.export` (``--onnx``), :mod:`compress.int8` (the QDQ graph starts from this export) and
:mod:`compress.bench` (the ``onnxruntime`` and ``openvino`` runtimes), so it sits below all three."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from compress import _io
from compress.models.fold import fold_batchnorm

__all__ = ["export_onnx", "check_onnx", "OnnxMismatchError", "max_difference", "ort_session_options",
           "require_onnxruntime", "check_input_shape", "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME"]

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"


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
    shape = check_input_shape(input_shape)
    if verify:
        require_onnxruntime()
    model = copy.deepcopy(model).float().cpu().eval()
    if fold_bn:
        model = fold_batchnorm(model).eval()
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
    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), ort_session_options(ort, threads=1), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {INPUT_NAME: example.numpy()})[0])
    with torch.inference_mode():
        want = model(example).float()
    diff, tol = max_difference(got, want, rtol=rtol, atol=atol)
    if diff > tol:
        raise OnnxMismatchError(f"ONNX output differs from PyTorch by {diff:.3g} (tolerance {tol:.3g}) in {path}")
    return diff


def max_difference(got: torch.Tensor, want: torch.Tensor, *, rtol: float, atol: float) -> tuple[float, float]:
    """``(max |got - want|, atol + rtol * max |want|)``; raises OnnxMismatchError when the shapes differ."""
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    if got.shape != want.shape:
        raise OnnxMismatchError(f"output shape {tuple(got.shape)} differs from eager {tuple(want.shape)}")
    diff = (got - want).abs().max().item() if want.numel() else 0.0
    return diff, atol + rtol * (want.abs().max().item() if want.numel() else 0.0)


def ort_session_options(ort, *, threads: int):
    """Session options for timing: ``threads`` intra-op, one inter-op, sequential, full graph optimization."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads would keep burning CPU after a run and slow whatever is timed next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def require_onnxruntime():
    """The ``onnxruntime`` module; ValueError naming the extra to install when it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise ValueError("onnxruntime is not installed: it needs the onnx extra, pip install 'compress[onnx]'") from None
    return onnxruntime


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


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """One image's sizes as a tuple of positive ints, like ``(1, 48, 48)``; TypeError/ValueError otherwise."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a sequence of ints like (1, 48, 48), not {input_shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"input_shape {input_shape!r} must be one image's positive sizes, like (1, 48, 48)")
    return shape
