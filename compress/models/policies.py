"""Scaling policies: which models of a family :func:`compress.models.scaling.fit` walks through to meet a budget.

- ``width``: the width multiplier alone (the depth held fixed), the MobileNet paper's alpha.
- ``compound``: EfficientNet's compound rule (Tan & Le 2019, Sec. 3.3): depth ``alpha ** phi`` and width
  ``beta ** phi`` with alpha = 1.2, beta = 1.1, one coefficient phi moved by the search. Shrinking a deep family
  then removes blocks as well as channels: repeated blocks first, then whole stages from the end
  (:func:`compress.models.builder.stage_repeats`). Depth comes in whole blocks, so the largest phi within the
  budget can stop just below a step up in depth with part of the budget unused; the width then grows alone at
  that depth until the budget is met (the models compared "at equal parameters" use their budget).
- ``min_channels``: of the family's distinct depths (every block count), the deepest whose widest model within
  the budget keeps every hidden layer at least ``min_channels`` wide; when no depth can, the depth with the
  widest narrowest layer.
- ``compound_res``: the compound rule with the input resolution too, ``gamma ** phi`` with gamma = 1.15, never
  above the data's own size (``input_size``) nor below half of it: the data are resized to the chosen size.

Each path is monotone in one coordinate (log width), so the search is a bisection ending on a channel step.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

from compress.models.factory import create
from compress.models.registry import get_spec
from compress.models.spec import MLPSpec

__all__ = ["EFFICIENTNET", "search", "depth_levels"]

EFFICIENTNET = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}   # depth, width, resolution (Tan & Le 2019, Eq. 3)
_LOW_WIDTH = 1 / 256     # below this every family is at its narrowest (one channel per layer with divisor 1)
_HIGH_WIDTH = 64.0
_STEPS = 12              # bisection steps in log-width: ~0.1% relative resolution, finer than channel steps
_CREATE_ARGS = set(inspect.signature(create).parameters) - {"name", "family_options"}


def _path(policy: str, kw: dict) -> Callable[[float], tuple[float, float, dict]]:
    """log-width s -> (width_mult, depth_mult, create kwargs) along ``policy``."""
    a, b, g = EFFICIENTNET["alpha"], EFFICIENTNET["beta"], EFFICIENTNET["gamma"]
    base = dict(kw)
    depth = float(base.pop("depth_mult", 1.0))
    native = int(base.get("input_size", 48))

    def along(s: float) -> tuple[float, float, dict]:
        width = math.exp(s)
        if policy == "width":
            return width, depth, base
        phi = s / math.log(b)
        args = base
        if policy == "compound_res":
            size = round(native * g ** phi)
            args = {**base, "input_size": int(min(native, max(math.ceil(native / 2), size)))}
        return width, a ** phi, args
    return along


def _bisect(name: str, budget, policy: str, along) -> Any:
    """The largest model along ``along`` (a log-width path) within ``budget``; ValueError when none is."""
    def sized(s: float):
        w, d, args = along(s)
        return budget.measure(name, w, d, args, policy)

    lo = math.log(_LOW_WIDTH)
    best = sized(lo)
    if not budget.holds(best):
        raise ValueError(
            f"impossible budget for {name}: the smallest model (width_mult={_LOW_WIDTH:g}, depth_mult="
            f"{best.depth_mult:.3g}) has {best.param_count:,} params"
            + (f", {best.macs:,} MACs" if best.macs else "")
            + (f", {best.size_bytes:,} bytes" if best.size_bytes is not None else "")
            + (f", {best.latency_ms:.3f} ms" if best.latency_ms is not None else "")
            + f"; budget: {budget.describe()}")
    hi = 0.0
    while True:   # grow the upper end until it is over budget
        f = sized(hi)
        if not budget.holds(f):
            break
        lo, best = hi, f
        if hi >= math.log(_HIGH_WIDTH):
            return best
        hi += math.log(2)
    for _ in range(_STEPS):   # bisection in log-width
        mid = (lo + hi) / 2
        f = sized(mid)
        if budget.holds(f):
            lo, best = mid, f
        else:
            hi = mid
    return best


def depth_levels(name: str, kw: dict) -> list[float]:
    """One depth multiplier per distinct architecture of family ``name`` below depth 1, deepest first:
    ``n / blocks`` for n = blocks .. 1, where blocks counts the stages' repeats (an MLP's hidden layers); each
    keeps n blocks (:func:`compress.models.builder.stage_repeats`)."""
    spec = get_spec(name, **{k: v for k, v in kw.items() if k not in _CREATE_ARGS})
    blocks = len(spec.hidden) if isinstance(spec, MLPSpec) else sum(s.repeats for s in spec.stages)
    return [n / blocks for n in range(blocks, 0, -1)] if blocks else [1.0]


def _min_channels(name: str, budget, kw: dict, min_channels: int):
    from compress.models.scaling import architecture_shape

    candidates, levels = [], depth_levels(name, kw)
    for d in levels:
        args = {**kw, "depth_mult": d}
        try:
            f = _bisect(name, budget, "min_channels", _path("width", args))
        except ValueError:
            continue                       # this depth cannot meet the budget even at its narrowest
        candidates.append((f, architecture_shape(f.build_args)))
    if not candidates:
        return _bisect(name, budget, "min_channels", _path("width", {**kw, "depth_mult": levels[-1]}))   # raises
    wide = [c for c in candidates if c[1]["narrowest"] >= min_channels]
    if wide:   # the deepest model that keeps every layer wide enough, then the larger one
        return max(wide, key=lambda c: (c[1]["layers"], c[0].param_count))[0]
    return max(candidates, key=lambda c: (c[1]["narrowest"], c[1]["layers"]))[0]


def search(name: str, budget, policy: str, kw: dict, *, min_channels: int = 8):
    """The :class:`~compress.models.scaling.Fit` of ``policy`` for ``budget`` (a ``scaling.Budget``)."""
    if policy == "min_channels":
        return _min_channels(name, budget, kw, min_channels)
    found = _bisect(name, budget, policy, _path(policy, kw))
    if policy == "width":
        return found
    # the compound depth, then the width alone up to the budget at that depth (and resolution)
    fixed = {**kw, "depth_mult": found.depth_mult, **({"input_size": found.input_size} if found.input_size else {})}
    try:
        wider = _bisect(name, budget, policy, _path("width", fixed))
    except ValueError:
        return found
    return wider if wider.width_mult > found.width_mult else found
