"""Size a model family to a budget, and match one family's size to another's.

:func:`fit` finds the largest width multiplier whose model stays within a budget of parameters, MACs
and/or bytes on disk; :func:`match` finds the width at which a second family has (within a tolerance)
the parameter count of a given model: the seed reports' "a CNN and a DNN with a similar parameter count".

Conventions: ``param_count`` is every parameter (``sum(p.numel() for p in model.parameters())``, BatchNorm's
weight and bias included); ``macs`` are conv + linear multiply-accumulates at batch 1 (:mod:`compress.profile`);
bytes are measured on a really serialized state_dict (``.pt`` or ``.npz`` in ``dtype``), or by ``bytes_fn``
(an artifact codec's writer, say). A ``.pt`` file's size depends on its name: ``torch.save`` names the zip's
folder after the file's stem (``archive`` in memory), stored twice per tensor. Channel counts move in :func:`~compress.blocks.make_divisible` steps, so
figures are step functions of the width; the search is a bisection on the width that ends on a step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
from torch import nn

from compress.models.registry import create

__all__ = ["Fit", "fit", "match", "at_width"]

_LOW_WIDTH = 1 / 256     # below this every family is at its narrowest (one channel per layer with divisor 1)
_HIGH_WIDTH = 64.0
_STEPS = 12              # bisection steps in log-width: ~0.1% relative resolution, finer than channel steps


@dataclass(frozen=True)
class Fit:
    """A sized model: its family, width multiplier and achieved figures (``size_bytes`` None if not asked)."""

    name: str
    width_mult: float
    param_count: int
    macs: int
    size_bytes: int | None
    build_args: dict

    def create(self) -> nn.Module:
        """Build the model (fresh random weights)."""
        return create(**self.build_args)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _default_bytes(format: str, dtype: torch.dtype) -> Callable[[nn.Module], int]:
    from compress.profile import state_dict_file_bytes

    key = f"{format}_{'fp16' if dtype == torch.float16 else 'fp32'}"

    def size(model: nn.Module) -> int:
        return state_dict_file_bytes(model)[key]

    return size


def at_width(name: str, width_mult: float, *, bytes_fn: Callable[[nn.Module], int] | None = None,
            macs: bool = True, **kw: Any) -> Fit:
    """Parameters, MACs (``macs=False`` skips the count and reports 0) and, with ``bytes_fn``, bytes of
    ``create(name, width_mult=..., **kw)``. Counting runs on the meta device (no weights allocated);
    bytes need real weights.
    """
    from compress.profile import profile

    with torch.device("meta"):
        model = create(name, width_mult=width_mult, **kw)
    param_count = sum(p.numel() for p in model.parameters())
    mac_count = profile(model, model.card.input_shape, execute="meta", serialize=False).macs if macs else 0
    size = None
    if bytes_fn is not None:
        size = int(bytes_fn(create(name, width_mult=width_mult, **kw)))
    return Fit(name, float(width_mult), param_count, mac_count, size, dict(model.card.build_args))


def _within(f: Fit, max_params, max_macs, max_bytes) -> bool:
    return ((max_params is None or f.param_count <= max_params) and (max_macs is None or f.macs <= max_macs)
            and (max_bytes is None or f.size_bytes <= max_bytes))


def _check_budget(label: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{label} must be a positive number, got {value!r}")


def fit(name: str, *, max_params: float | None = None, max_macs: float | None = None,
        max_bytes: float | None = None, dtype: torch.dtype = torch.float32, format: str = "pt",
        bytes_fn: Callable[[nn.Module], int] | None = None, **kw: Any) -> Fit:
    """The largest width multiplier of family ``name`` whose model meets every given budget.

    ``max_bytes`` is checked on the bytes of a really serialized state_dict in ``dtype`` (``torch.float32`` or
    ``torch.float16``) as ``format`` (``"pt"`` or ``"npz"``), or on ``bytes_fn(model)`` when given.
    ``kw`` goes to :func:`compress.models.create` (``num_classes``, ``in_chans``, ``input_size``, family options;
    ``depth_mult`` is held fixed).

    Raises ValueError when no budget is given, a budget is not positive, or even the narrowest model is over
    budget (the message gives the smallest achievable figures).
    """
    if max_params is None and max_macs is None and max_bytes is None:
        raise ValueError("fit: give at least one of max_params, max_macs, max_bytes")
    for label, value in (("max_params", max_params), ("max_macs", max_macs), ("max_bytes", max_bytes)):
        _check_budget(label, value)
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"fit: dtype must be torch.float32 or torch.float16, got {dtype!r}")
    if format not in ("pt", "npz"):
        raise ValueError(f"fit: format must be 'pt' or 'npz', got {format!r}")
    if "width_mult" in kw:
        raise ValueError("fit: width_mult is what fit searches for; do not pass it")
    if max_bytes is not None and bytes_fn is None:
        bytes_fn = _default_bytes(format, dtype)
    need_macs = max_macs is not None
    sized = lambda w: at_width(name, w, bytes_fn=bytes_fn if max_bytes is not None else None,  # noqa: E731
                              macs=need_macs, **kw)

    low = sized(_LOW_WIDTH)
    if not _within(low, max_params, max_macs, max_bytes):
        low = _with_macs(low, kw)
        raise ValueError(
            f"impossible budget for {name}: the smallest model (width_mult={_LOW_WIDTH:g}) has "
            f"{low.param_count:,} params, {low.macs:,} MACs"
            + (f", {low.size_bytes:,} bytes" if low.size_bytes is not None else "")
            + f"; budget: params<={max_params}, MACs<={max_macs}, bytes<={max_bytes}")
    lo, hi = _LOW_WIDTH, 1.0
    best = low
    while True:   # grow the upper end until it is over budget
        f = sized(hi)
        if not _within(f, max_params, max_macs, max_bytes):
            break
        lo, best = hi, f
        if hi >= _HIGH_WIDTH:
            return _with_macs(best, kw)
        hi *= 2
    for _ in range(_STEPS):   # bisection in log-width
        mid = math.sqrt(lo * hi)
        f = sized(mid)
        if _within(f, max_params, max_macs, max_bytes):
            lo, best = mid, f
        else:
            hi = mid
    return _with_macs(best, kw)


def _with_macs(f: Fit, kw: dict) -> Fit:
    if f.macs or f.param_count == 0:
        return f
    return dataclasses.replace(f, macs=at_width(f.name, f.width_mult, **kw).macs)


def match(reference: nn.Module | int, family: str, *, tolerance: float = 0.05, **kw: Any) -> Fit:
    """A model of ``family`` whose parameter count is within ``tolerance`` (relative) of ``reference``'s.

    ``reference`` is a model or a parameter count. Of the two widths on either side of the target, the
    closer one is returned. Raises ValueError when no width gets within the tolerance (with the closest).
    """
    if isinstance(reference, nn.Module):
        target = sum(p.numel() for p in reference.parameters())
    elif isinstance(reference, int) and not isinstance(reference, bool) and reference > 0:
        target = reference
    else:
        raise TypeError(f"match: reference must be an nn.Module or a positive int, got {reference!r}")
    if not (0 < tolerance < 1):
        raise ValueError(f"match: tolerance must be in (0, 1), got {tolerance!r}")
    candidates = []
    try:
        below = fit(family, max_params=target, **kw)
        candidates.append(below)
        # the next step up: the narrowest width whose count exceeds the target
        lo, hi = below.width_mult, below.width_mult * 2
        while at_width(family, hi, macs=False, **kw).param_count <= target and hi < _HIGH_WIDTH:
            lo, hi = hi, hi * 2
        for _ in range(_STEPS):
            mid = math.sqrt(lo * hi)
            if at_width(family, mid, macs=False, **kw).param_count <= target:
                lo = mid
            else:
                hi = mid
        candidates.append(at_width(family, hi, **kw))
    except ValueError:
        candidates.append(at_width(family, _LOW_WIDTH, **kw))
    best = min(candidates, key=lambda f: abs(f.param_count - target))
    error = abs(best.param_count - target) / target
    if error > tolerance:
        raise ValueError(f"cannot match {target:,} params with {family} within {tolerance:.0%}: the closest is "
                         f"{best.param_count:,} params (width_mult={best.width_mult:.4g}, off by {error:.1%})")
    return best
