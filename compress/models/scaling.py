"""Size a model family to a budget, and match one family's size to another's: the scaling search.

:func:`scale_to` finds the largest model of a family within a :class:`~compress.budget.Budget` (parameters, MACs,
bytes of a named file format, measured latency) along a scaling policy (:mod:`compress.models.policies` describes
the paths): ``"width"`` (width only), ``"compound"`` (EfficientNet's compound rule: depth and width together),
``"min_channels"`` (the deepest model whose every layer keeps at least ``min_channels`` channels) and
``"compound_res"`` (the compound rule with the input resolution too, never above the data's own). :func:`match`
finds the width at which a second family has (within a tolerance) the parameter count of a given model: the seed
reports' "a CNN and a DNN with a similar parameter count".

Every quantity has the budget's meaning (:mod:`compress.budget`): ``param_count`` every parameter, ``macs`` for
one image, ``size_bytes`` the file in ``budget.file_format`` (a state-dict format is measured here; another format
needs ``file_bytes``), ``latency_ms`` on ``budget.runtime`` (``latency``, :func:`compress.bench.latency_ms`,
passed in: models/ imports nothing above it). Channel counts move in :func:`~compress.blocks.make_divisible`
steps, so quantities are step functions of the width; the search is a bisection on the log width
(:func:`compress.budget.bisect`) that ends on a step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from compress.budget import STATE_DICT_FORMATS, Budget, bisect, mac_count, param_count, quantities
from compress.models.card import ModelCard, card_of
from compress.models.factory import create
from compress.models.policies import POLICIES, depth_levels, path

if TYPE_CHECKING:
    from compress.profile.result import Layer

__all__ = ["Scaled", "POLICIES", "scale_to", "match", "at_width", "architecture_shape"]

LOW_WIDTH = 1 / 256      # below this every family is at its narrowest (one channel per layer with divisor 1)
HIGH_WIDTH = 64.0
STEPS = 12               # bisection steps in log-width: ~0.1% relative resolution, finer than channel steps


@dataclass(frozen=True)
class Scaled:
    """A sized model: its family, multipliers and measured quantities (``size_bytes`` and ``latency_ms`` None
    when the budget did not limit them). ``build_args`` rebuild it (``create(**build_args)``), input size
    included."""

    name: str
    width_mult: float
    param_count: int
    macs: int
    size_bytes: int | None
    build_args: dict
    depth_mult: float = 1.0
    policy: str = "width"
    latency_ms: float | None = None

    @property
    def input_size(self) -> int:
        return int(self.build_args.get("input_size", 48))

    @property
    def quantities(self) -> dict[str, float | None]:
        """``{quantity: value}`` as :meth:`compress.budget.Budget.holds` reads them."""
        return {"param_count": self.param_count, "macs": self.macs, "size_bytes": self.size_bytes,
                "latency_ms": self.latency_ms}

    def create(self) -> nn.Module:
        """Build the model (fresh random weights)."""
        return create(**self.build_args)

    def table(self) -> str:
        """The model's multipliers, input, depth and width, and its quantities, one per line."""
        shape = architecture_shape(self.build_args)
        rows = [("width_mult", f"{self.width_mult:.4f}"), ("depth_mult", f"{self.depth_mult:.4g}"),
                ("input", f"{self.input_size}x{self.input_size}"),
                ("layers", f"{shape['layers']} weight layers, {shape['narrowest']} to {shape['widest']} channels"),
                ("params", f"{self.param_count:,}"), ("MACs", f"{self.macs:,}")]
        if self.size_bytes is not None:
            rows.append(("bytes", f"{self.size_bytes:,}"))
        if self.latency_ms is not None:
            rows.append(("latency", f"{self.latency_ms:.3f} ms"))
        return "\n".join(f"  {k:<11} {v}" for k, v in rows)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _card(model: nn.Module) -> ModelCard:
    """The card :func:`create` gives every model it builds."""
    card = card_of(model)
    assert card is not None, "create() gives every model its card"
    return card


def at_width(name: str, width_mult: float, *, macs: bool = True, **kw: Any) -> Scaled:
    """Parameters and MACs (``macs=False`` skips the count and reports 0) of ``create(name, width_mult=...,
    **kw)``, counted on the meta device (no weights allocated)."""
    with torch.device("meta"):
        model = create(name, width_mult=width_mult, **kw)
    card = _card(model)
    mac_total = mac_count(model, card.input_shape) if macs else 0
    return Scaled(name, float(width_mult), param_count(model), mac_total, None, dict(card.build_args))


@dataclass(frozen=True)
class _Sizer:
    """Measures the models a search walks through: what ``budget`` limits, with the functions passed in."""

    budget: Budget
    file_bytes: Callable[[nn.Module], int] | None = None
    latency: Callable[..., float] | None = None

    def __call__(self, name: str, width_mult: float, depth_mult: float, kw: dict, policy: str) -> Scaled:
        """The quantities the budget limits of ``create(name, width_mult=..., depth_mult=..., **kw)``."""
        limits = self.budget.limits
        f = at_width(name, width_mult, depth_mult=depth_mult, macs="macs" in limits, **kw)
        size = latency = None
        if "size_bytes" in limits or "latency_ms" in limits:
            real = f.create()   # bytes and time need real weights
            values = quantities(real, self.budget, _card(real).input_shape,
                               names=[q for q in ("size_bytes", "latency_ms") if q in limits],
                             file_bytes=self.file_bytes, latency=self.latency)
            size = None if values["size_bytes"] is None else int(values["size_bytes"])
            latency = values["latency_ms"]
        return dataclasses.replace(f, size_bytes=size, latency_ms=latency, depth_mult=float(depth_mult),
                                   policy=policy)

    def holds(self, f: Scaled) -> bool:
        return self.budget.holds(f.quantities)


def _largest(name: str, sizer: _Sizer, policy: str, along: Callable[[float], tuple[float, float, dict]]) -> Scaled:
    """The largest model along ``along`` (a log-width path) within the sizer's budget; ValueError when none is."""
    def sized(s: float) -> Scaled:
        w, d, args = along(s)
        return sizer(name, w, d, args, policy)

    lo = math.log(LOW_WIDTH)
    best = sized(lo)
    if not sizer.holds(best):
        raise ValueError(
            f"impossible budget for {name}: the smallest model (width_mult={LOW_WIDTH:g}, depth_mult="
            f"{best.depth_mult:.3g}) has {best.param_count:,} params"
            + (f", {best.macs:,} MACs" if best.macs else "")
            + (f", {best.size_bytes:,} bytes" if best.size_bytes is not None else "")
            + (f", {best.latency_ms:.3f} ms" if best.latency_ms is not None else "")
            + f"; budget: {sizer.budget.describe()}")
    hi = 0.0
    while True:   # grow the upper end until it is over budget
        f = sized(hi)
        if not sizer.holds(f):
            break
        lo, best = hi, f
        if hi >= math.log(HIGH_WIDTH):
            return best
        hi += math.log(2)
    found = bisect(lambda s: (sizer.holds(m := sized(s)), m), lo, hi, steps=STEPS, good_value=best).good_value
    assert found is not None   # the good end starts at best
    return found


def _min_channels(name: str, sizer: _Sizer, kw: dict, min_channels: int) -> Scaled:
    """The ``min_channels`` policy: the widest model within budget at each depth level, then the deepest whose
    narrowest layer keeps ``min_channels`` (or, when none does, the one with the widest narrowest layer)."""
    candidates, levels = [], depth_levels(name, kw)
    for d in levels:
        try:
            f = _largest(name, sizer, "min_channels", path("width", {**kw, "depth_mult": d}))
        except ValueError:
            continue                       # this depth cannot meet the budget even at its narrowest
        candidates.append((f, architecture_shape(f.build_args)))
    if not candidates:
        return _largest(name, sizer, "min_channels", path("width", {**kw, "depth_mult": levels[-1]}))   # raises
    wide = [c for c in candidates if c[1]["narrowest"] >= min_channels]
    if wide:   # the deepest model that keeps every layer wide enough, then the larger one
        return max(wide, key=lambda c: (c[1]["layers"], c[0].param_count))[0]
    return max(candidates, key=lambda c: (c[1]["narrowest"], c[1]["layers"]))[0]


def _search(name: str, sizer: _Sizer, policy: str, kw: dict, min_channels: int) -> Scaled:
    if policy == "min_channels":
        return _min_channels(name, sizer, kw, min_channels)
    found = _largest(name, sizer, policy, path(policy, kw))
    if policy == "width":
        return found
    # the compound depth, then the width alone up to the budget at that depth (and resolution)
    fixed = {**kw, "depth_mult": found.depth_mult, **({"input_size": found.input_size} if found.input_size else {})}
    try:
        wider = _largest(name, sizer, policy, path("width", fixed))
    except ValueError:
        return found
    return wider if wider.width_mult > found.width_mult else found


def scale_to(name: str, budget: Budget, *, policy: str = "width", min_channels: int = 8,
             file_bytes: Callable[[nn.Module], int] | None = None, latency: Callable[..., float] | None = None,
             **kw: Any) -> Scaled:
    """The largest model of family ``name`` along scaling ``policy`` that meets every limit of ``budget``.

    ``policy``: ``"width"`` (``depth_mult`` in ``kw`` held fixed), ``"compound"``, ``"min_channels"`` (every
    hidden layer at least ``min_channels`` wide when any depth allows it) or ``"compound_res"`` (see
    :mod:`compress.models.policies`). ``file_bytes(model) -> int`` measures ``budget.file_format`` when it is not
    a state-dict format; ``latency`` (:func:`compress.bench.latency_ms`) times a latency budget on this machine.
    ``kw`` goes to :func:`compress.models.create` (``num_classes``, ``in_chans``, ``input_size``, family options).

    Raises ValueError when the policy is unknown, a measuring function the budget needs is missing, or even the
    smallest model is over budget (the message gives the smallest achievable quantities); TypeError when
    ``budget`` is not a Budget.
    """
    if not isinstance(budget, Budget):
        raise TypeError(f"scale_to: budget must be a compress.budget.Budget, got {type(budget).__name__}")
    budget.require_limit("scale_to")
    if "width_mult" in kw:
        raise ValueError("scale_to: width_mult is what the search finds; do not pass it")
    if policy not in POLICIES:
        raise ValueError(f"scale_to: unknown policy {policy!r}; known: {', '.join(POLICIES)}")
    if policy != "width" and "depth_mult" in kw:
        raise ValueError(f"scale_to: policy {policy!r} searches the depth; do not pass depth_mult")
    if isinstance(min_channels, bool) or not isinstance(min_channels, int) or min_channels < 1:
        raise ValueError(f"scale_to: min_channels must be a positive int, got {min_channels!r}")
    limits = budget.limits
    if "size_bytes" in limits and file_bytes is None and budget.file_format not in STATE_DICT_FORMATS:
        raise ValueError(f"scale_to: file format {budget.file_format!r} is not a state-dict format "
                         f"({', '.join(STATE_DICT_FORMATS)}); pass file_bytes=")
    if "latency_ms" in limits and latency is None:
        raise ValueError("scale_to: a latency budget needs latency= (compress.bench.latency_ms)")
    found = _search(name, _Sizer(budget, file_bytes, latency), policy, kw, min_channels)
    return _with_macs(found)


def _with_macs(f: Scaled) -> Scaled:
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
    layers = [row for row in profile(model, _card(model).input_shape, execute="meta", serialize=False).layers
              if row.type in ("Conv2d", "Linear")]
    widths = [_output_shape(row)[1] for row in layers[:-1]] or [0]
    convs = [row for row in layers if row.type == "Conv2d"]
    return {"layers": len(layers), "narrowest": min(widths), "widest": max(widths),
            "last_map": _output_shape(convs[-1])[-1] if convs else None}


def _output_shape(row: Layer) -> tuple[int, ...]:
    assert row.output_shape is not None   # a layer of the model's forward: the profiler saw its output
    return row.output_shape


def match(reference: nn.Module | int, family: str, *, tolerance: float = 0.05, **kw: Any) -> Scaled:
    """A model of ``family`` whose parameter count is within ``tolerance`` (relative) of ``reference``'s.

    ``reference`` is a model or a parameter count. Of the two widths on either side of the target, the
    closer one is returned. Raises ValueError when no width gets within the tolerance (with the closest).
    """
    if isinstance(reference, nn.Module):
        target = param_count(reference)
    elif isinstance(reference, int) and not isinstance(reference, bool) and reference > 0:
        target = reference
    else:
        raise TypeError(f"match: reference must be an nn.Module or a positive int, got {reference!r}")
    if not (0 < tolerance < 1):
        raise ValueError(f"match: tolerance must be in (0, 1), got {tolerance!r}")
    fits = lambda s: (at_width(family, math.exp(s), macs=False, **kw).param_count <= target, None)  # noqa: E731
    candidates = []
    try:
        below = scale_to(family, Budget(max_params=target), **kw)
        candidates.append(below)
        # the next step up: the narrowest width whose count exceeds the target
        lo, hi = math.log(below.width_mult), math.log(below.width_mult * 2)
        while fits(hi)[0] and math.exp(hi) < HIGH_WIDTH:
            lo, hi = hi, hi + math.log(2)
        candidates.append(at_width(family, math.exp(bisect(fits, lo, hi, steps=STEPS).bad), **kw))
    except ValueError:
        candidates.append(at_width(family, LOW_WIDTH, **kw))
    best = min(candidates, key=lambda f: abs(f.param_count - target))
    error = abs(best.param_count - target) / target
    if error > tolerance:
        raise ValueError(f"cannot match {target:,} params with {family} within {tolerance:.0%}: the closest is "
                         f"{best.param_count:,} params (width_mult={best.width_mult:.4g}, off by {error:.1%})")
    return best

