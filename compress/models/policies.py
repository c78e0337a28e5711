"""Scaling policies: the paths through a family's models that :func:`compress.models.scaling.scale_to` searches.

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

Each path is monotone in one coordinate (log width), so the search (:mod:`compress.models.scaling`, which owns it)
is a bisection ending on a channel step. This module only describes the paths: :func:`path` and
:func:`depth_levels`.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

from compress.models.factory import create
from compress.models.registry import get_spec
from compress.models.spec import MLPSpec

__all__ = ["POLICIES", "EFFICIENTNET", "path", "depth_levels"]

POLICIES = ("width", "compound", "min_channels", "compound_res")
EFFICIENTNET = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}   # depth, width, resolution (Tan & Le 2019, Eq. 3)
_CREATE_ARGS = set(inspect.signature(create).parameters) - {"name", "family_options"}


def path(policy: str, kw: dict) -> Callable[[float], tuple[float, float, dict]]:
    """log-width s -> (width_mult, depth_mult, create kwargs) along ``policy`` from the create kwargs ``kw``
    (``"min_channels"`` walks the width at each of :func:`depth_levels`; its path at one depth is ``"width"``'s)."""
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


def depth_levels(name: str, kw: dict) -> list[float]:
    """One depth multiplier per distinct architecture of family ``name`` below depth 1, deepest first:
    ``n / blocks`` for n = blocks .. 1, where blocks counts the stages' repeats (an MLP's hidden layers); each
    keeps n blocks (:func:`compress.models.builder.stage_repeats`)."""
    spec = get_spec(name, **{k: v for k, v in kw.items() if k not in _CREATE_ARGS})
    blocks = len(spec.hidden) if isinstance(spec, MLPSpec) else sum(s.repeats for s in spec.stages)
    return [n / blocks for n in range(blocks, 0, -1)] if blocks else [1.0]
