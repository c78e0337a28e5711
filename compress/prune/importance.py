"""Importance of each prunable channel, summed over everything coupled to it.

Scores are keyed by channel (a union-find root of the graph); every score is ">= 0, higher = keep".

* ``l1`` / ``l2``: the weight norm of the channel's whole group, DepGraph-style (Fang et al. 2023): every filter
  that makes it and every input column that reads it, in every coupled conv and linear layer (L1: sum of
  ``|w|``; L2: square root of the sum of ``w**2``). Li et al. 2017 ("Pruning Filters for Efficient ConvNets")
  is the filters-only special case.
* ``bn``: ``|gamma|`` of the BatchNorm layers on the channel (network slimming, Liu et al. 2017; train with
  ``fit(..., regularizer=BatchNormL1(1e-4))`` from :mod:`compress.prune.regularize`, or ``compress train --bn-l1``,
  for the sparsity it expects). Groups without a norm fall back to ``l1``.
* ``taylor``: first-order Taylor expansion of the loss, Molchanov et al. 2017: per image
  ``|sum over positions of activation x gradient|`` at each layer making the channel, averaged over the batches
  given (``batches``: (images, labels) pairs, images normalized as the model expects). The model's gradients,
  buffers and train/eval flags are as they were afterwards.
* ``random``: uniform random scores (seeded), the baseline.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from compress.prune.graph import DependencyGraph
from compress.prune.trace import CONV, is_depthwise

__all__ = ["IMPORTANCES", "importance", "register_importance"]

Scores = dict[int, float]
IMPORTANCES: dict[str, Callable[..., Scores]] = {}


def register_importance(name: str):
    """Decorator: ``fn(graph, *, batches, seed) -> {channel: score}`` registered under ``name``."""

    def decorator(fn):
        if name in IMPORTANCES:
            raise ValueError(f"importance {name!r} is already registered")
        IMPORTANCES[name] = fn
        return fn

    return decorator


def importance(graph: DependencyGraph, name: str, *, batches: Iterable | None = None, seed: int = 0) -> Scores:
    """Score every prunable channel of ``graph`` by the importance ``name`` (see the module docstring).

    Raises ValueError for an unknown name, or ``taylor`` without batches.
    """
    if name not in IMPORTANCES:
        raise ValueError(f"unknown importance {name!r}; known: {', '.join(sorted(IMPORTANCES))}")
    scores = IMPORTANCES[name](graph, batches=batches, seed=seed)
    return {r: float(scores.get(r, 0.0)) for g in graph.groups for r in g.channels}


def _unique_uses(graph: DependencyGraph):
    seen = set()
    for use in graph.uses:
        if use.name not in seen:
            seen.add(use.name)
            yield use


def _weight(m: nn.Module) -> torch.Tensor | None:
    """The weight whose rows make a layer's outputs and whose columns read its inputs."""
    if isinstance(m, CONV + (nn.Linear,)):
        return m.weight
    if isinstance(m, nn.MultiheadAttention):
        return m.in_proj_weight
    return None


def _magnitude(graph: DependencyGraph, p: int) -> Scores:
    acc = torch.zeros(len(graph.trace.parent), dtype=torch.float64)
    for use in _unique_uses(graph):
        m = use.module
        w = _weight(m)
        if w is None:
            continue
        w = w.detach().float().cpu()
        w = w.abs() if p == 1 else w.pow(2)
        acc.index_add_(0, graph.roots(use.out_index), w.flatten(1).sum(1).double())
        if is_depthwise(m):
            continue        # its filters are its input channels', counted above
        g = m.groups if isinstance(m, CONV) else 1
        # column j of group k's filters reads input channel k * (in / g) + j
        cols = w.reshape(g, w.shape[0] // g, w.shape[1], -1).sum((1, 3)).flatten()
        acc.index_add_(0, graph.roots(use.in_index), cols.double())
    if p == 2:
        acc = acc.sqrt()
    return dict(enumerate(acc.tolist()))


@register_importance("l1")
def _l1(graph: DependencyGraph, **_) -> Scores:
    return _magnitude(graph, 1)


@register_importance("l2")
def _l2(graph: DependencyGraph, **_) -> Scores:
    return _magnitude(graph, 2)


@register_importance("bn")
def _bn(graph: DependencyGraph, **_) -> Scores:
    acc: dict[int, float] = {}
    for use in _unique_uses(graph):
        m = use.module
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            gamma = m.weight.detach().abs()
            for j, node in enumerate(use.out_ids):
                r = graph.root(node)
                acc[r] = acc.get(r, 0.0) + float(gamma[j])
    fallback = _magnitude(graph, 1)
    out: Scores = {}
    for g in graph.groups:
        has_norm = any(r in acc for r in g.channels)
        out.update({r: acc.get(r, 0.0) if has_norm else fallback.get(r, 0.0) for r in g.channels})
    return out


@register_importance("random")
def _random(graph: DependencyGraph, *, seed: int = 0, **_) -> Scores:
    gen = torch.Generator().manual_seed(seed)
    roots = [r for g in graph.groups for r in g.channels]
    return dict(zip(roots, torch.rand(len(roots), generator=gen).tolist()))


@register_importance("taylor")
def _taylor(graph: DependencyGraph, *, batches: Iterable | None = None, **_) -> Scores:
    if batches is None:
        raise ValueError("importance 'taylor' needs batches of (images, labels) to take gradients on")
    model = graph.model
    makers = [u for u in _unique_uses(graph)
              if isinstance(u.module, nn.Linear) or (isinstance(u.module, CONV) and not is_depthwise(u.module))]
    sums: dict[str, torch.Tensor | None] = {u.name: None for u in makers}
    count = 0

    def hook_for(name: str):
        def forward_hook(module, args, out):
            def grad_hook(grad):
                dims = [d for d in range(out.ndim) if d not in (0, 1)] if isinstance(module, CONV) else \
                    list(range(1, out.ndim - 1))
                s = (out.detach() * grad).sum(dims) if dims else out.detach() * grad
                s = s.abs().reshape(-1, s.shape[-1]).sum(0)
                sums[name] = s if sums[name] is None else sums[name] + s
            if out.requires_grad:
                out.register_hook(grad_hook)
        return forward_hook

    modules = dict(model.named_modules())
    handles = [modules[u.name].register_forward_hook(hook_for(u.name)) for u in makers]
    was = {m: m.training for m in modules.values()}
    grads = {p: p.grad for p in model.parameters()}       # the caller's gradients come back as they were
    buffers = [(m, k, b, b.detach().clone()) for m in modules.values() for k, b in m._buffers.items()
               if b is not None]
    model.eval()    # BatchNorm statistics stay as they are
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            count += len(x)
    finally:
        for h in handles:
            h.remove()
        for p, g in grads.items():
            p.grad = g
        with torch.no_grad():     # a forward that updates a buffer (a counter) leaves no trace
            for m, k, b, value in buffers:
                b.copy_(value)
                m._buffers[k] = b
        for m, flag in was.items():
            m.training = flag
    if count == 0:
        raise ValueError("importance 'taylor': the batches given were empty")
    acc: dict[int, float] = {}
    for u in makers:
        total = sums[u.name]
        if total is not None:
            for j, node in enumerate(u.out_ids):
                r = graph.root(node)
                acc[r] = acc.get(r, 0.0) + float(total[j]) / count
    return acc
