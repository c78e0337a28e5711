"""Per-layer bit widths under a byte budget: measure each layer's sensitivity to each codec, then choose one
codec per layer that keeps the predicted loss smallest within the budget.

Sensitivity (after HAWQ / Deep Compression's per-layer sensitivity scans): the increase of a loss on validation
data when only that layer goes through the codec and back, every other layer kept in float32
(:mod:`compress.quant.deep` uses the KL divergence of the outputs from the float model's, in nats). Losses of
several layers are assumed to add up. The choice is a multiple-choice knapsack solved exactly by dynamic
programming over the budget cut into ``resolution`` units (sizes rounded up, so the choice always fits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress.quant.layer_codecs import LayerCodec, decode_any, encode_coded, encoded_bytes

__all__ = ["DEFAULT_LAYER_CODECS", "Option", "layer_options", "allocate"]

DEFAULT_LAYER_CODECS = ("fp16", "int8", "int4", "kmeans4", "kmeans3", "kmeans2")


@dataclass
class Option:
    """One codec for one layer: its stored bytes and the loss increase it causes (nats, may be < 0: noise)."""

    codec: str
    size_bytes: int
    sensitivity: float


@torch.no_grad()
def layer_options(model: nn.Module, names: Sequence[str], codecs: Sequence[str],
                  loss_fn: Callable[[nn.Module], float] | None, *, entropy: bool = True) -> dict[str, list[Option]]:
    """For every weight in ``names`` and codec in ``codecs``: exact stored bytes (encoded as an artifact would)
    and sensitivity, ``loss_fn(model with that layer quantized) - loss_fn(model)`` (``loss_fn=None``: sizes
    only, sensitivities 0). The model is restored."""
    for c in codecs:
        LayerCodec.parse(c)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"layer_options: the model has no parameters {missing[:5]}")
    base = loss_fn(model) if loss_fn is not None else 0.0
    out: dict[str, list[Option]] = {}
    for name in names:
        p = params[name]
        original = p.detach().clone()
        options = []
        for codec in codecs:
            enc = encode_coded(original, codec, entropy=entropy)
            if loss_fn is None:
                options.append(Option(codec, encoded_bytes(enc), 0.0))
                continue
            p.copy_(decode_any(enc).to(p.dtype))
            options.append(Option(codec, encoded_bytes(enc), loss_fn(model) - base))
            p.copy_(original)
        out[name] = options
    return out


def allocate(options: Mapping[str, Sequence[Option]], budget_bytes: int, *,
             resolution: int = 4000) -> dict[str, Option]:
    """One option per layer with total ``size_bytes <= budget_bytes`` and the smallest sum of sensitivities
    (negative ones count as 0; among equals, more bits). Raises ValueError when even the smallest options do not
    fit."""
    if budget_bytes <= 0 or not options:
        raise ValueError(f"allocate: need layers and a positive budget, got {budget_bytes} bytes")
    unit = max(1, math.ceil(budget_bytes / resolution))
    cap = budget_bytes // unit
    names = list(options)
    dp = np.zeros(cap + 1)
    choices = []
    for name in names:
        opts = options[name]
        new = np.full(cap + 1, np.inf)
        arg = np.full(cap + 1, -1, dtype=np.int64)
        for j, o in enumerate(opts):
            cost = math.ceil(o.size_bytes / unit)
            if cost > cap:
                continue
            # tie-break towards wider codecs: a tiny penalty per bit given up
            value = max(o.sensitivity, 0.0) + 1e-7 * (32 - LayerCodec.parse(o.codec).bits)
            cand = np.full(cap + 1, np.inf)
            cand[cost:] = dp[:cap + 1 - cost] + value
            better = cand < new
            new[better], arg[better] = cand[better], j
        dp = new
        choices.append(arg)
    if not np.isfinite(dp[cap]):
        smallest = sum(min(o.size_bytes for o in options[n]) for n in names)
        raise ValueError(f"allocate: the smallest codecs need {smallest:,} bytes, the budget is {budget_bytes:,}")
    out, c = {}, cap
    for name, arg in zip(reversed(names), reversed(choices)):
        j = int(arg[c])
        out[name] = options[name][j]
        c -= math.ceil(options[name][j].size_bytes / unit)
    return {n: out[n] for n in names}
