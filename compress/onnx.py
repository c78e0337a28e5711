"""Float ONNX plumbing: a verified, atomically written ``.onnx`` file, and the ONNX Runtime session settings compress
uses. Shared by :mod:`compress.export` (``--onnx``), :mod:`compress.int8` (the QDQ graph starts from this export) and
:mod:`compress.bench` (the ``onnxruntime`` and ``openvino`` runtimes), so it sits below all three.

Preprocessing travels in the file: ``export_onnx(..., normalizer=, class_names=)`` writes ``metadata_props``
(:data:`METADATA_KEYS`: compress version, input shape, normalization, class names, what the input is), and with
``include_normalizer=True`` the graph starts with the normalization (``Sub``/``Div``), so raw pixels scaled to
[0, 1] go in. :func:`read_onnx` reads a file's inputs, outputs and that metadata back (:class:`OnnxInfo`), and
:class:`OnnxModel` runs a file with ONNX Runtime as an ``nn.Module`` (what ``compress evaluate``, ``predict`` and
``bench`` do with an ``.onnx`` file).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress import __version__, _io
from compress.data.bundle import Normalizer
from compress.models.fold import fold_batchnorm

__all__ = ["export_onnx", "check_onnx", "OnnxMismatchError", "max_difference", "ort_session_options",
           "require_onnxruntime", "require_onnx", "check_input_shape", "DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME",
           "METADATA_KEYS", "OnnxInfo", "OnnxModel", "read_onnx", "write_onnx_metadata", "onnx_metadata"]

DEFAULT_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "logits"
# metadata_props compress writes: values are JSON (but the version); "compress.input" is "normalized" (feed the
# normalizer's output) or "pixels" (feed images scaled to [0, 1]: the graph starts with the normalization)
METADATA_KEYS = ("compress.version", "compress.input_shape", "compress.normalizer", "compress.mean", "compress.std",
                 "compress.class_names", "compress.input")
MAX_ONNX_BYTES = 2 ** 31   # protobuf's own limit; larger models keep external data, which compress does not read


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
    normalizer: Normalizer | None = None,
    class_names: Sequence[str] | None = None,
    include_normalizer: bool = False,
) -> Path:
    """Export ``model`` to an ONNX file at ``path`` for inputs ``(batch, *input_shape)``; return the path.

    The input is named ``input`` and the output ``logits``; the batch axis is dynamic unless
    ``dynamic_batch=False``. ``fold_bn`` folds BatchNorm into convolutions first. Weights are exported
    in float32 (fp16 models are upcast). With ``verify`` (needs onnxruntime) the file's outputs on a
    random batch of 2 are compared with PyTorch's (``|onnx - torch| <= atol + rtol * max|torch|``)
    before the file is moved into place, so a file that disagrees is never written. The write is atomic.
    ``model`` itself is not modified.

    Preprocessing: ``normalizer`` (the :class:`~compress.data.bundle.Normalizer` the model was trained with) and
    ``class_names`` are written to the file's metadata with the input shape (needs the ``onnx`` package);
    ``include_normalizer`` puts the normalization into the graph itself, so the file takes images scaled to [0, 1]
    (metadata ``compress.input`` is then ``pixels``). An :class:`OnnxModel` (a file already) is written as it is.

    Raises ``ValueError`` for a bad shape or when verification needs onnxruntime and it is missing,
    and ``OnnxMismatchError`` (a ``RuntimeError``) when the exported outputs disagree with PyTorch.
    """
    shape = check_input_shape(input_shape)
    if include_normalizer and normalizer is None:
        raise ValueError("include_normalizer needs the normalizer to include: pass normalizer=")
    if isinstance(model, OnnxModel):
        return model.save(path, shape)
    if verify:
        require_onnxruntime()
    if normalizer is not None or class_names is not None:
        require_onnx()
    model = copy.deepcopy(model).float().cpu().eval()
    if fold_bn:
        model = fold_batchnorm(model).eval()
    if include_normalizer:
        assert normalizer is not None  # refused above
        model = _Normalized(normalizer, model).eval()
    example = torch.rand(2 if dynamic_batch else 1, *shape) if include_normalizer else \
        torch.randn(2 if dynamic_batch else 1, *shape)
    with _io.atomic_path(path) as tmp:
        _torch_onnx_export(model, example, tmp, opset=opset, dynamic_batch=dynamic_batch)
        if normalizer is not None or class_names is not None:
            write_onnx_metadata(tmp, onnx_metadata(shape, normalizer=normalizer, class_names=class_names,
                                                   pixels=include_normalizer))
        if verify:
            check_onnx(tmp, model, example, rtol=rtol, atol=atol)
    return Path(path)


class _Normalized(nn.Module):
    """``model(normalizer.from_unit(x))``: the normalization as the graph's first nodes (Sub/Div, or Mul by 255
    for a disabled normalizer)."""

    def __init__(self, normalizer: Normalizer, model: nn.Module):
        super().__init__()
        self.model = model
        c = max(len(normalizer.mean), 1)
        self.register_buffer("mean", torch.tensor(list(normalizer.mean) or [0.0]).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(normalizer.std) or [1.0]).view(1, c, 1, 1), persistent=False)
        self.enabled, self.standardize = normalizer.enabled, bool(normalizer.mean)

    def forward(self, x):
        if not self.enabled:
            return self.model(x * 255.0)
        return self.model((x - self.mean) / self.std if self.standardize else x)


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=False, do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
            return
        except Exception as legacy_exc:  # pragma: no cover - depends on the torch version
            legacy = legacy_exc
        try:  # pragma: no cover
            dims = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
            program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=dims, verbose=False,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset)
            assert program is not None  # the dynamo exporter returns its program when no file is given
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


# ---------------------------------------------------------------------------------------------- preprocessing metadata
def require_onnx():
    """The ``onnx`` module; ValueError naming the extra to install when it is missing."""
    try:
        import onnx
    except ImportError:
        raise ValueError("the onnx package is not installed: it comes with the onnx extra, pip install "
                         "'compress[onnx]'") from None
    return onnx


def onnx_metadata(input_shape: Sequence[int], *, normalizer: Normalizer | None = None,
                  class_names: Sequence[str] | None = None, pixels: bool = False) -> dict[str, str]:
    """The ``metadata_props`` compress writes (:data:`METADATA_KEYS`); ``pixels``: the graph normalizes itself."""
    props = {"compress.version": __version__, "compress.input_shape": json.dumps(list(check_input_shape(input_shape))),
             "compress.input": "pixels" if pixels else "normalized"}
    if normalizer is not None:
        props["compress.normalizer"] = json.dumps(normalizer.to_dict())
        props["compress.mean"], props["compress.std"] = json.dumps(list(normalizer.mean)), json.dumps(list(normalizer.std))
    if class_names is not None:
        props["compress.class_names"] = json.dumps(list(class_names))
    return props


def write_onnx_metadata(path: str | os.PathLike, props: Mapping[str, str]) -> Path:
    """Set ``props`` in the ``metadata_props`` of the ONNX file at ``path`` (others kept), atomically."""
    onnx = require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        model.metadata_props.add(key=str(key), value=str(value))
    with _io.atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


@dataclass(frozen=True)
class OnnxInfo:
    """What an ONNX file takes and gives. ``input_shape``: one image, from compress's metadata or else the graph's
    static sizes (None if neither); ``num_outputs``: the output's last size when static; ``normalizer`` and
    ``class_names`` from the metadata (None without); ``pixels``: the graph normalizes itself (feed images scaled
    to [0, 1]); ``dynamic_batch``: the batch axis is free; ``metadata``: every ``metadata_props`` entry."""

    input_name: str
    output_name: str
    input_shape: tuple[int, ...] | None
    num_outputs: int | None
    dynamic_batch: bool
    normalizer: Normalizer | None = None
    class_names: tuple[str, ...] | None = None
    pixels: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


def read_onnx(source: str | os.PathLike | bytes) -> OnnxInfo:
    """Read an ONNX file's inputs, outputs and compress metadata (nothing runs). Raises ValueError, one line, for a
    file that is not a valid ONNX model (truncated, damaged), that keeps its weights in external files, takes
    other than one input or gives other than one output, or whose compress metadata is malformed."""
    return _info(_load_proto(source), _where(source))


def _where(source) -> str:
    return "ONNX model" if isinstance(source, (bytes, bytearray)) else str(source)


def _load_proto(source):
    onnx = require_onnx()
    where = _where(source)
    if not isinstance(source, (bytes, bytearray)):
        if not Path(source).is_file():
            raise FileNotFoundError(f"ONNX file {where!r} does not exist")
        if os.path.getsize(source) > MAX_ONNX_BYTES:
            raise ValueError(f"{where}: larger than {MAX_ONNX_BYTES:,} bytes, the protobuf limit")
        source = Path(source).read_bytes()
    try:
        model = onnx.load_model_from_string(bytes(source))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ValueError(f"{where}: not a valid ONNX model, truncated or damaged ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:120]})") from None
    graph = model.graph
    if not graph.node or len(graph.output) != 1:
        raise ValueError(f"{where}: not a valid ONNX model, truncated or damaged (a graph of {len(graph.node)} nodes "
                         f"and {len(graph.output)} outputs; compress runs one-output models)")
    external = onnx.TensorProto.EXTERNAL
    if any(t.data_location == external for t in graph.initializer):
        raise ValueError(f"{where}: keeps weights in external data files, which compress does not read")
    return model


def _dims(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]


def _info(model, where: str) -> OnnxInfo:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"{where}: takes {len(inputs)} inputs; compress runs models of one image input")
    props = {p.key: p.value for p in model.metadata_props}
    dims, out_dims = _dims(inputs[0]), _dims(model.graph.output[0])
    shape = _json(where, props, "compress.input_shape")
    if shape is not None:
        if not (isinstance(shape, list) and shape and all(isinstance(n, int) and 0 < n <= 65536 for n in shape)):
            raise ValueError(f"{where}: metadata compress.input_shape {str(shape)[:60]} is not a list of sizes")
        shape = tuple(shape)
    elif len(dims) > 1 and all(d is not None for d in dims[1:]):
        shape = tuple(dims[1:])
    normalizer = _json(where, props, "compress.normalizer")
    if normalizer is not None:
        ok = isinstance(normalizer, dict) and isinstance(normalizer.get("mean"), list) and \
            isinstance(normalizer.get("std"), list) and len(normalizer["mean"]) == len(normalizer["std"]) <= 64 and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in normalizer["mean"] + normalizer["std"])
        if not ok or any(not v > 0 for v in normalizer["std"]):
            raise ValueError(f"{where}: metadata compress.normalizer {str(normalizer)[:80]} is malformed")
        normalizer = Normalizer(normalizer["mean"], normalizer["std"], bool(normalizer.get("enabled", True)))
    names = _json(where, props, "compress.class_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{where}: metadata compress.class_names is not a list of strings")
    pixels = props.get("compress.input") == "pixels"
    return OnnxInfo(inputs[0].name, model.graph.output[0].name, shape, out_dims[-1] if out_dims else None,
                    bool(dims) and dims[0] is None, normalizer, tuple(names) if names is not None else None, pixels,
                    props)


def _json(where: str, props: Mapping[str, str], key: str) -> Any:
    if key not in props:
        return None
    try:
        return json.loads(props[key])
    except (json.JSONDecodeError, RecursionError):
        raise ValueError(f"{where}: metadata {key} is not JSON") from None


class OnnxModel(nn.Module):
    """An ONNX file run by ONNX Runtime (CPU) as a module: ``forward(x)`` gives the file's output for ``x`` as a
    float32 CPU tensor. ``info`` is :func:`read_onnx`'s. Its input and output are renamed ``input`` and ``logits``
    (what compress's runtimes bind), so :func:`export_onnx` writes it out as it is and the ``onnxruntime`` and
    ``openvino`` runtimes of ``compress bench`` time the file itself. Raises ValueError like :func:`read_onnx`, or
    when ONNX Runtime cannot load the file."""

    def __init__(self, source: str | os.PathLike | bytes, *, threads: int | None = None):
        super().__init__()
        proto = _load_proto(source)
        self.source, self.threads = _where(source), threads or torch.get_num_threads()
        self.info = _info(proto, self.source)
        _rename(proto, self.info.input_name, INPUT_NAME, self.info.output_name, OUTPUT_NAME)
        self.data = proto.SerializeToString()
        self._session = None

    def session(self):
        if self._session is None:
            ort = require_onnxruntime()
            try:
                self._session = ort.InferenceSession(self.data, ort_session_options(ort, threads=self.threads),
                                                     providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
                raise ValueError(f"{self.source}: ONNX Runtime cannot load it ({type(exc).__name__}: "
                                 f"{(str(exc).splitlines() or [''])[0][:200]})") from None
        return self._session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session().run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def save(self, path: str | os.PathLike, input_shape: Sequence[int] | None = None) -> Path:
        """Write the file (inputs renamed) to ``path``; ``input_shape`` must be the file's own, when it has one."""
        if input_shape is not None and self.info.input_shape is not None and \
                tuple(input_shape) != tuple(self.info.input_shape):
            raise ValueError(f"{self.source} takes inputs of shape {self.info.input_shape}, not {tuple(input_shape)}")
        return _io.write_bytes(path, self.data)

    def __deepcopy__(self, memo):
        clone = OnnxModel.__new__(OnnxModel)
        nn.Module.__init__(clone)
        clone.source, clone.threads, clone.info, clone.data, clone._session = \
            self.source, self.threads, self.info, self.data, None
        clone.train(self.training)
        return clone

    def extra_repr(self) -> str:
        return f"{self.source!r}, input {self.info.input_shape}"


def _rename(proto, old_in: str, new_in: str, old_out: str, new_out: str) -> None:
    """Rename the graph's input and output (and every reference to them) in place."""
    names = {old_in: new_in, old_out: new_out}
    if all(k == v for k, v in names.items()):
        return
    graph = proto.graph
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in names:
                node.input[i] = names[name]
        for i, name in enumerate(node.output):
            if name in names:
                node.output[i] = names[name]
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name in names:
            value.name = names[value.name]
