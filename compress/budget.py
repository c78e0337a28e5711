"""Budgets: limits on what a model costs, one meaning for each number, and the one search over a monotone knob.

A :class:`Budget` limits four quantities (the unit is in the name):

- ``param_count``: every parameter, BatchNorm's weight and bias included, a shared tensor counted once.
- ``macs``: conv + linear multiply-accumulates for one image, :mod:`compress.profile`'s conventions.
- ``size_bytes``: the bytes of the model's file in the budget's ``file_format``. The state-dict formats are
  measured here on a really serialized state_dict: ``"pt-fp16"`` (``torch.save`` of a float16 state_dict, the
  course's rule and the default), ``"pt-fp32"``, ``"npz-fp16"``, ``"npz-fp32"`` (``np.savez``). Any other format
  (a compress artifact with a codec, say) is measured by the layer that writes it and passed in as
  ``file_bytes``: :func:`compress.export.artifact_bytes` gives one for ``"artifact:CODEC[+fold]"`` names.
- ``latency_ms``: the median time of one call at the budget's ``batch_size`` on its ``runtime`` with ``threads``
  CPU threads, on this machine (so an answer depends on the CPU and its load). Timing needs
  :mod:`compress.bench`, which sits above every capability that takes a budget, so it is passed in as
  ``latency`` (:func:`compress.bench.latency_ms`), as bytes of artifacts are.

:func:`quantities` is the one function that measures them for a budget; scaling a family
(:mod:`compress.models.scaling`), structured pruning (:mod:`compress.prune`) and the tables of both use it.
:func:`bisect` is the one boundary search over a monotone knob (a log width, a channel ratio, a sparsity grid),
used by scaling, pruning, Deep Compression and export.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from torch import nn

__all__ = ["QUANTITIES", "STATE_DICT_FORMATS", "Budget", "Boundary", "quantities", "param_count", "mac_count",
           "state_dict_bytes", "bisect", "format_quantity"]

QUANTITIES = ("param_count", "macs", "size_bytes", "latency_ms")
STATE_DICT_FORMATS = ("pt-fp16", "pt-fp32", "npz-fp16", "npz-fp32")
_LIMITS = {"max_params": "param_count", "max_macs": "macs", "max_bytes": "size_bytes",
           "max_latency_ms": "latency_ms"}

T = TypeVar("T")


@dataclass(frozen=True)
class Budget:
    """Limits a model must meet (None: no limit) and how the quantities are measured. A budget with no limit only
    names the meanings (``Budget()``: the defaults); a search needs at least one limit and says so."""

    max_params: int | None = None        # parameters (count)
    max_macs: int | None = None          # multiply-accumulates for one image
    max_bytes: int | None = None         # bytes of the model's file in ``file_format``
    max_latency_ms: float | None = None  # median ms per call at ``batch_size`` on ``runtime``, ``threads`` threads
    file_format: str = "pt-fp16"         # what max_bytes counts: a STATE_DICT_FORMATS name, or one a caller measures
    runtime: str = "eager"               # what max_latency_ms runs on: a runtime of compress.bench
    batch_size: int = 1                  # images per call for max_latency_ms
    threads: int = 1                     # CPU threads for max_latency_ms

    def __post_init__(self) -> None:
        for field_name in _LIMITS:
            value = getattr(self, field_name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"budget: {field_name} must be a positive number, got {value!r}")
        if not isinstance(self.file_format, str) or not self.file_format:
            raise ValueError(f"budget: file_format must be a format name such as 'pt-fp16', got {self.file_format!r}")
        if not isinstance(self.runtime, str) or not self.runtime:
            raise ValueError(f"budget: runtime must be a runtime name such as 'eager', got {self.runtime!r}")
        for field_name in ("batch_size", "threads"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"budget: {field_name} must be a positive int, got {value!r}")

    @property
    def limits(self) -> dict[str, float]:
        """``{quantity: limit}`` of the limits given, in :data:`QUANTITIES` order."""
        return {quantity: getattr(self, field_name) for field_name, quantity in _LIMITS.items()
                if getattr(self, field_name) is not None}

    def require_limit(self, who: str) -> None:
        """Raise ValueError (naming ``who``) when no limit is given."""
        if not self.limits:
            raise ValueError(f"{who}: give at least one of max_params, max_macs, max_bytes, max_latency_ms")

    def holds(self, values: Mapping[str, Any]) -> bool:
        """Whether every limited quantity in ``values`` (``{quantity: value}``) is within its limit."""
        return not self.over(values)

    def over(self, values: Mapping[str, Any]) -> list[str]:
        """The limited quantities of ``values`` above their limit (a missing one counts as over)."""
        return [q for q, limit in self.limits.items() if values.get(q) is None or values[q] > limit]

    def scaled(self, start: Mapping[str, float], fraction: float) -> "Budget":
        """The budget a fraction of the way from ``start`` (the model's own quantities) to this one: what step
        ``k`` of a gradual reduction aims at (``fraction`` 1 is this budget)."""
        changes = {field_name: start[q] + (getattr(self, field_name) - start[q]) * fraction
                   for field_name, q in _LIMITS.items() if getattr(self, field_name) is not None}
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """``params<=20,000, bytes<=225,000 (pt-fp16), latency<=2 ms (eager, batch 1, 1 thread)``."""
        parts = []
        for q, limit in self.limits.items():
            text = f"{_SHORT[q]}<={format_quantity(q, limit)}"
            if q == "size_bytes":
                text += f" ({self.file_format})"
            if q == "latency_ms":
                text += f" ({self.runtime}, batch {self.batch_size}, {self.threads} thread" \
                        f"{'s' if self.threads > 1 else ''})"
            parts.append(text)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Budget":
        """Inverse of :meth:`to_dict`; rejects unknown keys."""
        from compress._settings import from_known

        return from_known(cls, d)


_SHORT = {"param_count": "params", "macs": "MACs", "size_bytes": "bytes", "latency_ms": "latency"}


def format_quantity(quantity: str, value: float | None) -> str:
    """A quantity's value as tables print it: counts with thousands separators, ms with three decimals."""
    if value is None:
        return "-"
    if quantity == "latency_ms":
        return f"{value:.3f}" if value < 100 else f"{value:,.1f}"
    return f"{int(round(value)):,}"


# ------------------------------------------------------------------------------------------------ measuring
def param_count(model: nn.Module) -> int:
    """Every parameter of ``model`` (a tensor shared by two modules counted once)."""
    return sum(p.numel() for p in model.parameters())


def mac_count(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on one image of ``input_shape`` ``(C, H, W)``
    (:func:`compress.profile.profile`; a model on the meta device is counted without running)."""
    from compress.profile import profile

    meta = any(p.is_meta for p in model.parameters())
    return profile(model, tuple(input_shape), execute="meta" if meta else "auto", serialize=False).macs


def state_dict_bytes(model: nn.Module, file_format: str = "pt-fp16") -> int:
    """Bytes that ``torch.save`` (``"pt-*"``) or ``np.savez`` (``"npz-*"``) really write for ``model``'s
    state_dict in float16 or float32 (:data:`STATE_DICT_FORMATS`). Raises ValueError for another format."""
    if file_format not in STATE_DICT_FORMATS:
        raise ValueError(f"unknown state-dict format {file_format!r}; known: {', '.join(STATE_DICT_FORMATS)}")
    from compress.profile import state_dict_file_bytes

    key = file_format.replace("-", "_")
    sizes = state_dict_file_bytes(model, files=(key,))   # only the file asked for is written
    if not sizes:
        raise ValueError("file bytes need real weights: the model is on the meta device")
    return sizes[key]


def quantities(model: nn.Module, budget: Budget, input_shape: Sequence[int], *,
               names: Sequence[str] | None = None,
               file_bytes: Callable[[nn.Module], int] | None = None,
               latency: Callable[..., float] | None = None) -> dict[str, float | None]:
    """``{quantity: value}`` of ``model`` for the quantities ``budget`` limits (or those in ``names``; the others
    are None), each with the budget's meaning.

    ``input_shape``: one image ``(C, H, W)`` (MACs, latency). ``file_bytes(model) -> int`` measures
    ``budget.file_format`` when it is not a state-dict format. ``latency(model, input_shape, *, runtime,
    batch_size, threads) -> ms`` times the model (:func:`compress.bench.latency_ms`). Raises ValueError when a
    quantity needs a function that was not given, naming it.
    """
    wanted = tuple(names) if names is not None else tuple(budget.limits)
    unknown = [q for q in wanted if q not in QUANTITIES]
    if unknown:
        raise ValueError(f"unknown quantity {unknown[0]!r}; known: {', '.join(QUANTITIES)}")
    out: dict[str, float | None] = dict.fromkeys(QUANTITIES)
    for q in wanted:
        if q == "param_count":
            out[q] = param_count(model)
        elif q == "macs":
            out[q] = mac_count(model, input_shape)
        elif q == "size_bytes":
            out[q] = _file_bytes(model, budget.file_format, file_bytes)
        else:
            if latency is None:
                raise ValueError("a latency budget needs a latency function: pass latency=compress.bench.latency_ms")
            out[q] = float(latency(model, tuple(input_shape), runtime=budget.runtime, batch_size=budget.batch_size,
                                   threads=budget.threads))
    return out


def _file_bytes(model: nn.Module, file_format: str, file_bytes: Callable[[nn.Module], int] | None) -> int:
    if file_bytes is not None:
        return int(file_bytes(model))
    if file_format not in STATE_DICT_FORMATS:
        raise ValueError(f"file format {file_format!r} is not a state-dict format ({', '.join(STATE_DICT_FORMATS)}); "
                         "pass file_bytes= (compress.export.artifact_bytes(format) for artifact formats)")
    return state_dict_bytes(model, file_format)


# ------------------------------------------------------------------------------------------------ searching
@dataclass(frozen=True)
class Boundary(Generic[T]):
    """Where a monotone test flips: the last knob that passed and the first that failed, with what the test
    returned there (``None`` for an end that was assumed, never tested)."""

    good: float
    good_value: T | None
    bad: float
    bad_value: T | None


def bisect(test: Callable[[float], tuple[bool, T]], good: float, bad: float, *, steps: int | None = None,
           good_value: T | None = None, bad_value: T | None = None) -> Boundary[T]:
    """The boundary of a monotone knob between ``good`` (passes) and ``bad`` (fails), in either order.

    ``test(x) -> (passes, value)`` measures the thing at knob ``x`` (a model, its size...). The interval is halved
    ``steps`` times at its midpoint; ``steps=None`` treats the knob as an integer (indices into a grid) and halves
    until ``good`` and ``bad`` are neighbours. ``good_value``/``bad_value``: what the caller already measured at
    the ends. Returns the :class:`Boundary`; the caller chooses its side (the largest model within a budget is the
    good side of a width, the least pruning that meets one the good side of a ratio).
    """
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise ValueError(f"bisect: steps must be a non-negative int or None, got {steps!r}")
    count = 0
    while (count < steps) if steps is not None else abs(bad - good) > 1:
        mid = (good + bad) / 2 if steps is not None else (good + bad) // 2
        passes, value = test(mid)
        if passes:
            good, good_value = mid, value
        else:
            bad, bad_value = mid, value
        count += 1
    return Boundary(good, good_value, bad, bad_value)
