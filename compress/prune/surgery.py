"""Removing channels for real: every weight, bias and norm statistic is sliced, every layer's size attributes
rewritten, so the result is a plain smaller ``nn.Module`` (no masks, no hooks)."""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

from compress.prune.graph import DependencyGraph
from compress.prune.trace import CONV, is_depthwise, is_grouped

__all__ = ["remove_channels"]


def _keep(graph: DependencyGraph, ids: list[int], block: int, removed: torch.Tensor) -> torch.Tensor:
    """Indices (along a weight dim of ``len(ids) * block``) of the features whose channel stays."""
    kept = torch.isin(graph.roots(ids), removed, invert=True).nonzero().flatten()
    return (kept.view(-1, 1) * block + torch.arange(block)).flatten()


def _param(old: torch.Tensor | None, index: torch.Tensor, dim: int) -> nn.Parameter | None:
    if old is None:
        return None
    new = old.detach().index_select(dim, index.to(old.device)).clone()
    return nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter) else new


def _slice_conv(m: nn.Conv2d, keep_in: torch.Tensor, keep_out: torch.Tensor) -> None:
    """``keep_in``: the input channels kept; for a grouped conv the positions kept in its first group (every
    group keeps the same ones: the graph coupled them), so ``groups`` stays; a depthwise conv keeps
    ``groups`` = its kept input channels, each with its ``out / in`` filters."""
    if is_depthwise(m):
        m.weight = _param(m.weight, keep_out, 0)
        m.groups = m.in_channels = len(keep_in)
    else:
        m.weight = _param(_param(m.weight, keep_out, 0), keep_in, 1)
        m.in_channels = len(keep_in) * m.groups
    m.bias = _param(m.bias, keep_out, 0)
    m.out_channels = len(keep_out)
    assert m.out_channels % m.groups == 0, f"pruned conv: {m.out_channels} outputs in {m.groups} groups"


def _slice_linear(m: nn.Linear, keep_in: torch.Tensor, keep_out: torch.Tensor) -> None:
    m.weight = _param(_param(m.weight, keep_out, 0), keep_in, 1)
    m.bias = _param(m.bias, keep_out, 0)
    m.in_features, m.out_features = len(keep_in), len(keep_out)


def _slice_norm(m: nn.Module, keep: torch.Tensor) -> None:
    for name in ("weight", "bias"):
        if getattr(m, name, None) is not None:
            setattr(m, name, _param(getattr(m, name), keep, 0))
    if isinstance(m, nn.LayerNorm):
        m.normalized_shape = (len(keep),)
        return
    for name in ("running_mean", "running_var"):
        if getattr(m, name, None) is not None:
            setattr(m, name, getattr(m, name).index_select(0, keep.to(getattr(m, name).device)).clone())
    m.num_features = len(keep)


def _replaced(m: nn.Module) -> list[torch.Tensor]:
    """The tensors of ``m`` that slicing replaces by new ones (so the copy may share them until then)."""
    names = ("weight", "bias", "running_mean", "running_var")
    return [t for t in (getattr(m, n, None) for n in names) if isinstance(t, torch.Tensor)]


def remove_channels(graph: DependencyGraph, removed: Iterable[int]) -> nn.Module:
    """A copy of ``graph.model`` without the channels (union-find roots from ``graph.groups``) in ``removed``.

    The original model is left untouched. A removed channel must belong to a group (pinned ones never do).
    """
    removed = set(removed)
    prunable = {r for g in graph.groups for r in g.channels}
    assert removed <= prunable, "remove_channels: a pinned channel was asked for"
    removed = torch.tensor(sorted(removed), dtype=torch.long)
    # the layers that get sliced have every tensor replaced: share them in the copy instead of copying them first
    memo = {id(t): t for use in graph.uses for t in _replaced(use.module)}
    model = copy.deepcopy(graph.model, memo)
    modules = dict(model.named_modules())
    done: set[str] = set()
    for use in graph.uses:
        if use.name in done:       # a layer called twice: its channels were joined, one slicing does
            continue
        done.add(use.name)
        m = modules[use.name]
        keep_out = _keep(graph, use.out_ids, 1, removed)
        if isinstance(m, CONV):
            in_ids = use.in_ids[:m.in_channels // m.groups] if is_grouped(m) else use.in_ids
            _slice_conv(m, _keep(graph, in_ids, use.in_block, removed), keep_out)
        elif isinstance(m, nn.Linear):
            _slice_linear(m, _keep(graph, use.in_ids, use.in_block, removed), keep_out)
        else:   # a norm: its channels are its input's
            _slice_norm(m, _keep(graph, use.in_ids, use.in_block, removed))
    return model
