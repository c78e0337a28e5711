"""The runtime registry, a leaf (it imports torch and nothing of compress): what a runtime is (a :class:`Runtime` record), what a prepared model is (a
:class:`Runner`), and the tolerances outputs are checked at. Implementations (:mod:`compress.bench.torch_runtimes`,
``ort``, ``cuda_graph``, ``int8``, ``openvino``) import this module and register their records at import;
:mod:`compress.bench.runtimes` imports them and answers questions about the set. Nothing here imports them back.

A factory takes ``(model, shape, *, dtype, device, threads)`` and returns a :class:`Runner`; ``runner(x)`` binds a
batch and returns ``(call, output)``: ``call()`` runs the batch once (what is timed) and ``output(call())`` gives a
torch tensor. A factory that also declares ``weights`` (an int8 artifact's exact int8 values and scales) or
``calibration`` (model inputs to take activation ranges from) gets them; the int8 runtimes do.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, cast

import torch
from torch import nn

__all__ = ["Runtime", "Runner", "OutputMismatchError", "tolerance", "INT8_TOLERANCE", "KINDS", "DEVICES",
           "register_runtime", "unregister_runtime", "get_runtime", "registered_runtimes"]

KINDS = ("float", "half", "int8")   # what numbers a runtime computes in (and so the tolerance it is checked at)
DEVICES = ("cpu", "cuda")
# int8 outputs against eager float32: a sanity check that the int8 graph computes the model (errors of 1-10%
# of the largest logit are normal: torch's x86 kernels use 7-bit activations; a broken graph is off by the whole
# range); the accuracy check is compress.int8.check_int8's.
INT8_TOLERANCE = {"rtol": 0.2, "atol": 1e-5}


class OutputMismatchError(RuntimeError):
    """A runtime's outputs disagree with eager PyTorch's beyond the tolerance (it then gets no time)."""


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """The ``rtol``/``atol`` a runtime's outputs must meet against eager for inputs of ``dtype``."""
    if dtype == torch.bfloat16:   # 8 significant bits (fp16 has 11): errors through a network are ~1%
        return {"rtol": 5e-2, "atol": 5e-3}
    return {"rtol": 1e-2, "atol": 1e-3} if dtype == torch.float16 else {"rtol": 1e-3, "atol": 1e-4}


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


@dataclass(frozen=True)
class Runtime:
    """Everything compress knows about one runtime.

    ``factory(model, shape, *, dtype, device, threads[, weights, calibration]) -> Runner`` prepares a model.
    ``devices``: where it runs (``"cpu"``, ``"cuda"``). ``needs``: modules that must be importable (checked
    without importing them). ``extra``: the ``compress[...]`` extra that installs them, named in the error.
    ``kind``: ``"float"`` (the model's float32 numbers: checked at float32 tolerance, what the study's latency
    column picks among), ``"half"`` or ``"int8"`` (an int8 path: needs an int8 artifact or quantizes a float model
    itself). ``default``: in ``compress bench``'s default set. ``check(device)``: raises ValueError for what no
    field says (a GPU without bfloat16, torch without an x86 quantized engine, onnxruntime without CUDA).
    """

    name: str
    factory: Callable[..., Runner]
    devices: tuple[str, ...] = ("cpu",)
    needs: tuple[str, ...] = ()
    kind: str = "float"
    default: bool = True
    extra: str | None = None
    check: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"runtime name must be an identifier like 'my_runtime', not {self.name!r}")
        if not callable(self.factory):
            raise TypeError(f"runtime {self.name!r}: factory must be callable, not {type(self.factory).__name__}")
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "needs", tuple(self.needs))
        if not self.devices or not set(self.devices) <= set(DEVICES):
            raise ValueError(f"runtime {self.name!r}: devices must be some of {DEVICES}, not {self.devices!r}")
        if self.kind not in KINDS:
            raise ValueError(f"runtime {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.check is not None and not callable(self.check):
            raise TypeError(f"runtime {self.name!r}: check must be callable or None")

    def require(self, device: str) -> None:
        """Raise ValueError unless this runtime can run here on ``device`` (``"cpu"`` or ``"cuda"``)."""
        if device not in self.devices:
            where = "runs on the CPU only (device 'cpu')" if self.devices == ("cpu",) else \
                f"needs device {' or '.join(map(repr, self.devices))}"
            raise ValueError(f"runtime {self.name!r} {where}, not {device!r}")
        for module in self.needs:
            if importlib.util.find_spec(module) is None:
                how = f"pip install 'compress[{self.extra}]'" if self.extra else f"pip install {module}"
                raise ValueError(f"runtime {self.name!r} needs the {module} package, not installed here: {how}")
        if self.check is not None:
            self.check(device)


_RUNTIMES: dict[str, Runtime] = {}


def register_runtime(runtime: Runtime | str, factory: Callable[..., Runner] | None = None, **fields):
    """Add a runtime: a :class:`Runtime` record, or ``register_runtime(name, factory, **fields)`` (defaults: CPU,
    float, in the default set). Returns the factory for the second form (so it can decorate), the record for the
    first. A taken name raises ValueError."""
    # a missing factory: Runtime's own check refuses it (TypeError)
    record = runtime if isinstance(runtime, Runtime) else \
        Runtime(runtime, cast(Callable[..., Runner], factory), **fields)
    if isinstance(runtime, Runtime) and (factory is not None or fields):
        raise TypeError("register_runtime: give a Runtime record alone, or a name, a factory and record fields")
    if record.name in _RUNTIMES:
        raise ValueError(f"runtime {record.name!r} is already registered")
    _RUNTIMES[record.name] = record
    return record if isinstance(runtime, Runtime) else record.factory


def unregister_runtime(name: str) -> Runtime:
    """Remove the runtime ``name`` and return its record (a test's own toy runtime, say). Unknown: ValueError."""
    record = get_runtime(name)
    del _RUNTIMES[name]
    return record


def get_runtime(name: str) -> Runtime:
    """The record of the runtime ``name``; ValueError listing the known ones otherwise."""
    if name not in _RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; known: {', '.join(_RUNTIMES)}")
    return _RUNTIMES[name]


def registered_runtimes(*, kind: str | None = None) -> tuple[Runtime, ...]:
    """Every registered record (of ``kind`` when given), in registration order."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    return tuple(r for r in _RUNTIMES.values() if kind is None or r.kind == kind)

