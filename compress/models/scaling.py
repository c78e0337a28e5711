"""Size a model family to a budget, and match one family's size to another's.

:func:`fit` finds the largest model of a family that stays within a budget of parameters, MACs, bytes on disk
and/or measured latency, along a scaling policy (:mod:`compress.models.policies`): ``"width"`` (width only),
``"compound"`` (EfficientNet's compound rule: depth and width together), ``"min_channels"`` (the deepest model
whose every layer keeps at least ``min_channels`` channels) and ``"compound_res"`` (the compound rule with the
input resolution too, never above the data's own). :func:`match` finds the width at which a second family has
(within a tolerance) the parameter count of a given model: the seed reports' "a CNN and a DNN with a similar
parameter count".

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

from compress.models.factory import create

__all__ = ["Fit", "Budget", "POLICIES", "fit", "match", "at_width", "architecture_shape"]

POLICIES = ("width", "compound", "min_channels", "compound_res")

_LOW_WIDTH = 1 / 256     # below this every family is at its narrowest (one channel per layer with divisor 1)
_HIGH_WIDTH = 64.0
_STEPS = 12              # bisection steps in log-width: ~0.1% relative resolution, finer than channel steps


@dataclass(frozen=True)
class Fit:
    """A sized model: its family, multipliers and achieved figures (``size_bytes``, ``latency_ms`` None if not
    asked). ``build_args`` rebuild it (``create(**build_args)``), input size included."""

    name: str
    width_mult: float
    param_count: int
    macs: int
    size_bytes: int | None
    build_args: dict
    depth_mult: float = 1.0
    policy: str = "width"
    latency_ms: float | None = None    # batch 1, 1 thread, median, with Budget.latency_runtime

    @property
    def input_size(self) -> int:
        return int(self.build_args.get("input_size", 48))

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


def _check_budget(label: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{label} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class Budget:
    """Limits a sized model must meet (None: no limit) and how bytes and latency are measured."""

    max_params: float | None = None
    max_macs: float | None = None
    max_bytes: float | None = None
    max_latency_ms: float | None = None             # batch 1, 1 thread, median of ``latency_repeats`` calls
    bytes_fn: Callable[[nn.Module], int] | None = None
    latency_runtime: str = "eager"                  # a runtime of compress.bench (eager, onnxruntime, ...)
    latency_repeats: int = 20

    def __post_init__(self) -> None:
        limits = (("max_params", self.max_params), ("max_macs", self.max_macs), ("max_bytes", self.max_bytes),
                  ("max_latency_ms", self.max_latency_ms))
        if all(v is None for _, v in limits):
            raise ValueError("fit: give at least one of max_params, max_macs, max_bytes, max_latency_ms")
        for label, value in limits:
            _check_budget(label, value)

    def measure(self, name: str, width_mult: float, depth_mult: float, kw: dict, policy: str) -> Fit:
        """The figures this budget needs of ``create(name, width_mult=..., depth_mult=..., **kw)``."""
        f = at_width(name, width_mult, depth_mult=depth_mult, macs=self.max_macs is not None,
                     bytes_fn=self.bytes_fn if self.max_bytes is not None else None, **kw)
        latency = None
        if self.max_latency_ms is not None:
            latency = latency_ms(f.create(), runtime=self.latency_runtime, repeats=self.latency_repeats)
        return dataclasses.replace(f, depth_mult=float(depth_mult), policy=policy, latency_ms=latency)

    def holds(self, f: Fit) -> bool:
        return ((self.max_params is None or f.param_count <= self.max_params)
                and (self.max_macs is None or f.macs <= self.max_macs)
                and (self.max_bytes is None or f.size_bytes <= self.max_bytes)
                and (self.max_latency_ms is None or f.latency_ms <= self.max_latency_ms))

    def describe(self) -> str:
        parts = [f"{label}<={v:,}" for label, v in (("params", self.max_params), ("MACs", self.max_macs),
                                                      ("bytes", self.max_bytes)) if v is not None]
        if self.max_latency_ms is not None:
            parts.append(f"latency<={self.max_latency_ms:g} ms ({self.latency_runtime})")
        return ", ".join(parts)


def latency_ms(model: nn.Module, *, runtime: str = "eager", repeats: int = 20) -> float:
    """Median latency in ms of ``model`` at batch 1 on one CPU thread under ``runtime`` (compress.bench)."""
    from compress.bench.latency import measure

    record = measure(model, model.card.input_shape, runtime=runtime, batch_sizes=(1,), threads=1, warmup=3,
                     repeats=repeats)[0]
    if record.median_ms is None:
        raise ValueError(f"latency runtime {runtime!r} failed: {record.error}")
    return record.median_ms


def fit(name: str, *, max_params: float | None = None, max_macs: float | None = None,
        max_bytes: float | None = None, max_latency_ms: float | None = None, policy: str = "width",
        min_channels: int = 8, latency_runtime: str = "eager", dtype: torch.dtype = torch.float32,
        format: str = "pt", bytes_fn: Callable[[nn.Module], int] | None = None, **kw: Any) -> Fit:
    """The largest model of family ``name`` along scaling ``policy`` that meets every given budget.

    ``policy``: ``"width"`` (``depth_mult`` in ``kw`` held fixed), ``"compound"``, ``"min_channels"`` (every
    hidden layer at least ``min_channels`` wide when any depth allows it) or ``"compound_res"`` (see
    :mod:`compress.models.policies`). ``max_bytes`` is checked on the bytes of a really serialized state_dict
    in ``dtype`` (``torch.float32`` or ``torch.float16``) as ``format`` (``"pt"`` or ``"npz"``), or on
    ``bytes_fn(model)`` when given. ``max_latency_ms`` is measured on this machine (batch 1, 1 thread, median)
    with ``latency_runtime``, so the answer depends on the CPU and its load. ``kw`` goes to
    :func:`compress.models.create` (``num_classes``, ``in_chans``, ``input_size``, family options).

    Raises ValueError when no budget is given, a budget is not positive, the policy is unknown, or even the
    smallest model is over budget (the message gives the smallest achievable figures).
    """
    from compress.models.policies import search

    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"fit: dtype must be torch.float32 or torch.float16, got {dtype!r}")
    if format not in ("pt", "npz"):
        raise ValueError(f"fit: format must be 'pt' or 'npz', got {format!r}")
    if "width_mult" in kw:
        raise ValueError("fit: width_mult is what fit searches for; do not pass it")
    if policy not in POLICIES:
        raise ValueError(f"fit: unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    if policy != "width" and "depth_mult" in kw:
        raise ValueError(f"fit: policy {policy!r} searches the depth; do not pass depth_mult")
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"fit: min_channels must be a positive int, got {min_channels!r}")
    if max_bytes is not None and bytes_fn is None:
        bytes_fn = _default_bytes(format, dtype)
    budget = Budget(max_params, max_macs, max_bytes, max_latency_ms, bytes_fn, latency_runtime)
    found = search(name, budget, policy, kw, min_channels=min_channels)
    return _with_macs(found, kw)


def _with_macs(f: Fit, kw: dict) -> Fit:
    if f.macs or f.param_count == 0:
        return f
    args = {k: v for k, v in f.build_args.items() if k not in ("name", "width_mult")}
    return dataclasses.replace(f, macs=at_width(f.name, f.width_mult, **args).macs)


def architecture_shape(build_args: dict) -> dict:
    """Depth and width of a model: weight layers (conv + linear), the narrowest and widest hidden layer (output
    channels or units, the classifier excluded) and the spatial size of the last feature map. From the
    profiler's per-layer rows on the meta device: nothing is allocated."""
    from compress.profile import profile

    with torch.device("meta"):
        model = create(**build_args).eval()
    layers = [row for row in profile(model, model.card.input_shape, execute="meta", serialize=False).layers
              if row.type in ("Conv2d", "Linear")]
    widths = [row.output_shape[1] for row in layers[:-1]] or [0]
    convs = [row for row in layers if row.type == "Conv2d"]
    return {"layers": len(layers), "narrowest": min(widths), "widest": max(widths),
            "last_map": convs[-1].output_shape[-1] if convs else None}


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
