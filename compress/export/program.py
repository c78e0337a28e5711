"""A model's architecture as a program: how artifacts rebuild models without their code.

A model built by :func:`compress.models.create` from a registered family rebuilds from its card. Any other model
(a torchvision, timm or user model, pruned or not, or any ``nn.Module``) is exported with ``torch.export`` in eval
mode, batch size dynamic (static batch 1 when the model does not allow a dynamic one, with a note), and stored as
the JSON graph torch serializes, without its pickled parts: the parameters, buffers and constants go into the
artifact's tensor table, encoded like any weights, and the graph is rebuilt with tensors decoded in memory.
Nothing is ever unpickled, imported or evaluated from the file: :mod:`compress.export.program_check` checks
every field torch's deserializer would act on first, and :func:`build_program` runs the graph on the meta device
(shapes only) before any memory is allocated for activations.

    program = export_program(model, (3, 64, 64))          # ValueError (one line) for a model torch cannot export
    module = build_program(program.spec, program.tensors)  # an eval-mode nn.Module whose state_dict names match
    save_program(model, "program.json", input_shape=(3, 64, 64))   # the graph and its constants, no weights
    module = load_program("program.json", state_dict)      # weights from elsewhere (a checkpoint read safely)

A loaded program runs in eval mode only: its graph was traced in eval mode (BatchNorm uses running statistics,
dropout is gone), so ``module.train()`` raises. It computes what the model computed, with the same ATen
operators: bitwise on CPU for the models tested, within float32 rounding otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import io
import json
import logging
import math
import os
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress import _io
from compress.export.manifest import MANIFEST_MAX_BYTES, NP_DTYPES, ArtifactError
from compress.export.program_check import (MAX_TENSOR_ELEMENTS, PROGRAM_FORMAT, check_program, program_inputs,
                                           tensor_meta)
from compress.onnx import check_input_shape
from compress.quant.codecs import DROPPED_SUFFIXES

__all__ = ["Program", "export_program", "build_program", "save_program", "load_program", "MAX_ACTIVATION_BYTES",
           "PROGRAM_FILE_FORMAT"]

MAX_ACTIVATION_BYTES = 2 ** 31   # live activations of one image while a loaded program runs (2 GiB)
PROGRAM_FILE_FORMAT = "compress.program/1"
_VERIFY_RTOL, _VERIFY_ATOL = 1e-4, 1e-5


@dataclass
class Program:
    """An exported architecture: ``spec`` is plain JSON data (the manifest's ``model["program"]``: ``format``,
    ``input_shape``, ``batch_size`` (None: any), ``torch``, ``graph``); ``state`` the parameters and persistent
    buffers it takes (the model's own tensors, by their state_dict names); ``constants`` what it takes besides
    (non-persistent buffers, tensors created in ``forward``); ``note`` why the batch is static, if it is."""

    spec: dict
    state: dict[str, torch.Tensor]
    constants: dict[str, torch.Tensor]
    note: str | None = None

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        return {**self.state, **self.constants}


def _describe(model: nn.Module) -> str:
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}"


def _refusal(model: nn.Module, reason: str) -> ValueError:
    reason = (reason.strip().splitlines() or ["unknown error"])[0][:300]
    return ValueError(f"cannot store the architecture of {_describe(model)} as a program: {reason}; save the weights "
                      f"only with save(..., program=False) and load them with load(path, model=instance)")


def export_program(model: nn.Module, input_shape: Sequence[int], *, verify: bool = True) -> Program:
    """``model`` (eval mode, float32; not modified) as a :class:`Program` taking inputs ``(batch, *input_shape)``.

    The batch axis is dynamic; a model that pins it (``x.view(2, -1)``) is exported for batches of 1, and
    ``Program.note`` says why. With ``verify`` the program is rebuilt from its JSON and checked against the model on
    a random batch (relative 1e-4) and against :mod:`~compress.export.program_check`'s limits, so a program that
    would not load is never written. Raises ValueError, one line naming the model, the reason and what to do
    instead, for a model torch cannot export (data-dependent control flow, outputs other than one tensor...).
    """
    shape = check_input_shape(input_shape)
    module = _float_eval_copy(model)
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    pinned = None
    for batch in (2, 1):
        try:
            with torch.no_grad():
                out = module(example[:batch])
            break
        except Exception as exc:  # noqa: BLE001 - the model's own error, reported in one line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            if batch == 1:
                raise _refusal(model, f"it fails on a batch of shape {(1, *shape)} ({type(exc).__name__}: {first})")
            pinned = f"exported for batches of 1 only: the model fails on a batch of 2 ({type(exc).__name__}: {first})"
    if not isinstance(out, torch.Tensor):
        raise _refusal(model, f"it returns {type(out).__name__}, not one tensor")
    ep, note = _export(model, module, example, dynamic=pinned is None)
    note = note or pinned
    spec = {"format": PROGRAM_FORMAT, "input_shape": list(shape), "batch_size": None if note is None else 1,
            "torch": torch.__version__, "graph": _program_json(ep)}
    constants = {}
    for name, value in ep.constants.items():
        if not isinstance(value, torch.Tensor):
            raise _refusal(model, f"it holds a {type(value).__name__} constant {name!r}, not a tensor")
        constants[name] = value.detach().clone()
    program = Program(spec, {k: v.detach() for k, v in ep.state_dict.items()}, constants, note)
    if verify:
        _verify(model, module, program, example if note is None else example[:1])
    return program


def _float_eval_copy(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with half-precision tensors as float32 (what a loaded artifact holds): a copy when
    that changes anything, so the caller's model is untouched."""
    half = (torch.float16, torch.bfloat16)
    if not any(m.training for m in model.modules()) and not any(
            t.dtype in half for t in [*model.parameters(), *model.buffers()]):
        return model
    module = copy.deepcopy(model).eval()
    return module._apply(lambda t: t.float() if t.dtype in half else t)


@contextlib.contextmanager
def _quiet():
    """torch.export logs warnings and prints whole graphs to stderr when it fails; the refusal says what matters
    in one line."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _export(model: nn.Module, module: nn.Module, example: torch.Tensor, *, dynamic: bool):
    """``(ExportedProgram, note)``: a dynamic batch if asked and torch allows one, else a batch of 1 and the
    reason (None when not asked)."""
    with _quiet():
        return _export_quietly(model, module, example, dynamic=dynamic)


def _export_quietly(model: nn.Module, module: nn.Module, example: torch.Tensor, *, dynamic: bool):
    dynamic_error = None
    if dynamic:
        try:
            batch = torch.export.Dim("batch", min=1)
            return torch.export.export(module, (example,), dynamic_shapes=({0: batch},)), None
        except Exception as exc:  # noqa: BLE001 - torch raises many types; the static export decides
            dynamic_error = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
    try:
        ep = torch.export.export(module, (example[:1],))
    except Exception as exc:  # noqa: BLE001
        raise _refusal(model, f"torch.export failed ({type(exc).__name__}: {exc})") from None
    return ep, f"exported for batches of 1 only: a dynamic batch failed ({dynamic_error})" if dynamic_error else None


def _program_json(ep) -> dict:
    """The JSON program of ``ep`` without what compress never loads: node metadata (stack traces with the user's
    file paths, module stacks) and the call graph of submodules (the root's signature is all ``module()`` uses).
    The state dict, constants and example inputs torch pickles are not taken at all."""
    from torch._export.serde.serialize import serialize

    skip: dict[str, Any] = {k: False for k in ("serialize_state_dict", "serialize_constants", "serialize_example_inputs")
            if k in inspect.signature(serialize).parameters}   # the pickled parts are never used: skip making them
    doc = json.loads(serialize(ep, **skip).exported_program)
    gm = doc["graph_module"]
    for node in gm["graph"]["nodes"]:
        node["metadata"] = {}
    gm["metadata"] = {}
    gm["module_call_graph"] = [e for e in gm["module_call_graph"] if e.get("fqn") == ""]
    return doc


def _verify(model: nn.Module, module: nn.Module, program: Program, example: torch.Tensor) -> None:
    try:
        check_program("the exported program", program.spec)
        rebuilt = build_program(program.spec, program.tensors, source="the exported program")
    except ArtifactError as exc:
        raise _refusal(model, str(exc).split(": ", 1)[-1]) from None
    with torch.no_grad():
        want, got = module(example), rebuilt(example)
    diff = (got.float() - want.float()).abs().max().item() if want.numel() else 0.0
    tol = _VERIFY_ATOL + _VERIFY_RTOL * (want.float().abs().max().item() if want.numel() else 0.0)
    if got.shape != want.shape or not diff <= tol:
        raise _refusal(model, f"the exported program's outputs differ from the model's by {diff:.3g}")


# ---------------------------------------------------------------------------------------------- rebuilding
def build_program(spec: Mapping, tensors: Mapping[str, torch.Tensor], *, source: Any = "program") -> nn.Module:
    """The module of a program ``spec`` (checked with :func:`~compress.export.program_check.check_program` first)
    with ``tensors`` (state_dict names -> tensors; ``num_batches_tracked`` counters may be missing): eval mode,
    CPU, state_dict names as the exported model's. Every stored tensor's shape is compared with the program's
    declaration, and the graph is run on the meta device (shapes only) and refused when one tensor would exceed
    ``MAX_TENSOR_ELEMENTS`` elements or the live activations of one image ``MAX_ACTIVATION_BYTES``, before it
    ever runs on real data. Raises :class:`~compress.export.manifest.ArtifactError` naming ``source``."""
    check_program(source, spec)
    state, constants = _inputs(spec, tensors, source)
    ep = _deserialize(spec, state, constants, source)
    module = _module(ep)
    _check_activations(module, spec, source)
    return module.eval()


def _inputs(spec: Mapping, tensors: Mapping[str, torch.Tensor], source) -> tuple[dict, dict]:
    """``(state_dict, constants)`` for torch's deserializer, each tensor checked against the program's declaration."""
    state: dict[str, torch.Tensor] = {}
    constants: dict[str, torch.Tensor] = {}
    wanted = set()
    for kind, arg, target, persistent in program_inputs(spec):
        wanted.add(target)
        shape, dtype = tensor_meta(spec, arg)
        t = tensors.get(target)
        if t is None and target.endswith(DROPPED_SUFFIXES) and shape == ():
            t = torch.zeros((), dtype=dtype)   # BatchNorm's step counter: artifacts drop it, eval never reads it
        if t is None:
            raise ArtifactError(f"{source}: the program takes {kind} {target[:80]!r}, which is not stored")
        if tuple(t.shape) != shape:
            raise ArtifactError(f"{source}: {kind} {target[:80]!r} is stored as {tuple(t.shape)}, the program "
                                f"declares {shape}")
        t = t.detach().to(dtype=dtype).contiguous()
        if kind == "parameter":
            state[target] = nn.Parameter(t, requires_grad=t.is_floating_point())
        elif kind == "buffer" and persistent:
            state[target] = t
        else:
            constants[target] = t
    unexpected = sorted(set(tensors) - wanted)
    if unexpected:
        raise ArtifactError(f"{source}: tensors {[k[:80] for k in unexpected[:3]]} are stored but the program does "
                            f"not take them")
    return state, constants


def _deserialize(spec: Mapping, state: dict, constants: dict, source):
    from torch._export.serde import schema
    from torch._export.serde.serialize import ExportedProgramDeserializer, _dict_to_dataclass

    try:
        serialized = _dict_to_dataclass(schema.ExportedProgram, copy.deepcopy(spec["graph"]))
        return ExportedProgramDeserializer().deserialize(serialized, state, constants, None)
    except Exception as exc:  # noqa: BLE001 - torch's deserializer raises many types for a malformed program
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ArtifactError(f"{source}: cannot rebuild the program ({type(exc).__name__}: {first}); it was written "
                            f"with torch {str(spec.get('torch'))[:40]}, this is torch {torch.__version__}") from None


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    if mode:
        raise ValueError("a model loaded from a program runs in eval mode only (its graph was traced in eval mode: "
                         "BatchNorm statistics fixed, no dropout); to train it, build the model in code and load the "
                         "weights with compress.export.load(path, model=instance)")
    return nn.Module.train(self, False)


def _module(ep) -> nn.Module:
    """``ep.module()`` without input guards (guard code is never loaded) whose ``eval()`` works and ``train()``
    explains why it cannot."""
    kwargs = {"check_guards": False} if "check_guards" in inspect.signature(ep.module).parameters else {}
    module = ep.module(**kwargs)
    module.__dict__.pop("eval", None)            # nn.Module.eval() is train(False)
    module.train = types.MethodType(_eval_only, module)
    return module


class _ShapeRun(torch.fx.Interpreter):
    """Runs a graph on the meta device (every operator computes shapes only) and bounds what it would allocate."""

    def __init__(self, module: nn.Module, source, limit_bytes: int):
        super().__init__(module, garbage_collect_values=True)
        self.source, self.limit = source, limit_bytes
        self.held: dict[Any, set] = {}      # storage -> nodes whose values hold it
        self.sizes: dict[Any, int] = {}
        self.by_node: dict[Any, list] = {}
        self.live = self.peak = 0

    def fetch_attr(self, target: str):
        value = super().fetch_attr(target)
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    def run_node(self, node):
        out = super().run_node(node)
        if node.op not in ("get_attr", "output"):
            self._hold(node, out)
        for dead in self.user_to_last_uses.get(node, []):
            self._release(dead)
        return out

    def _hold(self, node, out) -> None:
        keys = []
        for t in _tensors(out):
            if t.numel() > MAX_TENSOR_ELEMENTS:
                raise ArtifactError(f"{self.source}: the program computes a tensor of shape {tuple(t.shape)} at "
                                    f"{node.name!r}, beyond the limit of {MAX_TENSOR_ELEMENTS} elements")
            storage = t.untyped_storage()
            key = getattr(storage, "_cdata", id(storage))
            if key not in self.sizes:
                self.sizes[key] = storage.nbytes()
                self.live += self.sizes[key]
            self.held.setdefault(key, set()).add(node)
            keys.append(key)
        self.by_node[node] = keys
        self.peak = max(self.peak, self.live)
        if self.live > self.limit:
            raise ArtifactError(f"{self.source}: the program holds {self.live:,} bytes of activations at "
                                f"{node.name!r} for one batch, beyond the limit of {self.limit:,}")

    def _release(self, node) -> None:
        for key in self.by_node.pop(node, []):
            holders = self.held.get(key)
            if holders is not None:
                holders.discard(node)
                if not holders:
                    del self.held[key]
                    self.live -= self.sizes.pop(key)


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _check_activations(module: nn.Module, spec: Mapping, source) -> None:
    batch = spec.get("batch_size") or 1
    x = torch.empty(batch, *spec["input_shape"], device="meta")
    runner = _ShapeRun(module, source, MAX_ACTIVATION_BYTES * batch)
    try:
        with torch.no_grad():
            out = runner.run(x)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - an operator without shape rules, a data-dependent shape...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ArtifactError(f"{source}: the program cannot be checked on the meta device before it runs "
                            f"({type(exc).__name__}: {first})") from None
    if not isinstance(out, torch.Tensor):
        raise ArtifactError(f"{source}: the program returns {type(out).__name__}, not one tensor")


# ---------------------------------------------------------------------------------------------- program files
def save_program(model: nn.Module, path: str | os.PathLike, *, input_shape: Sequence[int]) -> Path:
    """Write ``model``'s architecture (no weights) to a JSON file at ``path``: the program and its constants
    (non-persistent buffers, tensors made in ``forward``: what a state_dict lacks). :func:`load_program` rebuilds it
    with a state_dict read elsewhere (``torch.load(weights_only=True)`` of a checkpoint). Raises ValueError like
    :func:`export_program`. The write is atomic."""
    program = export_program(model, input_shape)
    constants = {name: _encode_array(t) for name, t in program.constants.items()}
    text = json.dumps({"format": PROGRAM_FILE_FORMAT, "program": program.spec, "constants": constants},
                      separators=(",", ":"))
    if len(text) > MANIFEST_MAX_BYTES:
        raise _refusal(model, f"its program takes {len(text):,} bytes, beyond the {MANIFEST_MAX_BYTES:,}-byte limit")
    return _io.write_text(path, text)


def load_program(source: str | os.PathLike | bytes, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The module of a program file written by :func:`save_program` (a path, or its bytes) with the weights
    ``state_dict`` (names as the model's; ``num_batches_tracked`` may be missing), as :func:`build_program`
    builds it. Raises :class:`~compress.export.manifest.ArtifactError` for a bad file or weights that do not fit."""
    where = "program" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        size = os.path.getsize(source)
        if size > MANIFEST_MAX_BYTES:
            raise ArtifactError(f"{where}: program file of {size:,} bytes exceeds the {MANIFEST_MAX_BYTES:,}-byte limit")
        raw = Path(source).read_bytes()
    if len(raw) > MANIFEST_MAX_BYTES:
        raise ArtifactError(f"{where}: program of {len(raw):,} bytes exceeds the {MANIFEST_MAX_BYTES:,}-byte limit")
    if raw[:1] == b"\x80":
        raise ArtifactError(f"{where}: holds a pickle, not a JSON program; refused (never unpickled)")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{where}: not a JSON program ({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or doc.get("format") != PROGRAM_FILE_FORMAT or not isinstance(
            doc.get("constants"), dict):
        raise ArtifactError(f"{where}: not a compress program file (format {PROGRAM_FILE_FORMAT!r})")
    tensors = {k: v for k, v in state_dict.items()}
    for name, entry in doc["constants"].items():
        if name in tensors:
            raise ArtifactError(f"{where}: constant {name[:80]!r} is also a weight")
        tensors[name] = _decode_array(where, name, entry)
    return build_program(doc["program"], tensors, source=where)


def _encode_array(t: torch.Tensor) -> dict:
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    a = t.numpy()
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _decode_array(where, name: str, entry: Any) -> torch.Tensor:
    ok = (isinstance(entry, dict) and entry.get("dtype") in NP_DTYPES and isinstance(entry.get("shape"), list)
          and len(entry["shape"]) <= 8 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                for n in entry["shape"])
          and isinstance(entry.get("data"), str))
    if not ok or math.prod(entry["shape"]) > MAX_TENSOR_ELEMENTS:
        raise ArtifactError(f"{where}: constant {name[:80]!r} malformed")
    dtype = np.dtype(entry["dtype"])
    if len(entry["data"]) != 4 * math.ceil(math.prod(entry["shape"]) * dtype.itemsize / 3):
        raise ArtifactError(f"{where}: constant {name[:80]!r} holds a different number of bytes than its shape")
    try:
        data = base64.b64decode(entry["data"], validate=True)
    except ValueError as exc:
        raise ArtifactError(f"{where}: constant {name[:80]!r} is not base64 ({exc})") from None
    if len(data) != math.prod(entry["shape"]) * dtype.itemsize:
        raise ArtifactError(f"{where}: constant {name[:80]!r} holds a different number of bytes than its shape")
    return torch.from_numpy(np.frombuffer(data, dtype=dtype).reshape(entry["shape"]).copy())
