"""Removing channels for real: every weight, bias, norm statistic and channel-sized tensor is sliced, every layer's
size attributes (and attention head counts, and the int attributes reshapes read) rewritten, so the result is a
plain smaller ``nn.Module`` (no masks, no hooks)."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Iterable, overload

import torch
from torch import nn

from compress.prune.attention import apply_heads, slice_in_projection
from compress.prune.graph import DependencyGraph
from compress.prune.trace import CONV, is_depthwise, is_grouped

__all__ = ["remove_channels"]


def _keep(gone: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Positions (along a weight dim, one node per position) whose channel stays (``gone``: one flag per node)."""
    return (~gone[ids]).nonzero().flatten()


@overload
def _param(old: nn.Parameter, index: torch.Tensor, dim: int) -> nn.Parameter: ...
@overload
def _param(old: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor: ...
@overload
def _param(old: None, index: torch.Tensor, dim: int) -> None: ...
def _param(old: torch.Tensor | None, index: torch.Tensor, dim: int) -> torch.Tensor | None:
    if old is None:
        return None
    new = old.detach().index_select(dim, index.to(old.device)).clone()
    return nn.Parameter(new, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter) else new


def _slice_conv(m: nn.Conv1d | nn.Conv2d | nn.Conv3d, keep_in: torch.Tensor, keep_out: torch.Tensor) -> None:
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
    if m.out_channels % m.groups:
        raise ValueError(f"{m.out_channels} outputs left in {m.groups} groups")


def _slice_linear(m: nn.Linear, keep_in: torch.Tensor, keep_out: torch.Tensor) -> None:
    m.weight = _param(_param(m.weight, keep_out, 0), keep_in, 1)
    m.bias = _param(m.bias, keep_out, 0)
    m.in_features, m.out_features = len(keep_in), len(keep_out)


def _slice_per_output(m: nn.Module, keep_out: torch.Tensor, outputs: int) -> None:
    """A conv or linear subclass's own per-output tensors (timm's ``ScaledStdConv2d.gain``, ``outputs`` long in
    their first dim) follow its outputs."""
    for name, t in [*m._parameters.items(), *m._buffers.items()]:
        if name not in ("weight", "bias") and t is not None and t.ndim and t.shape[0] == outputs:
            setattr(m, name, _param(t, keep_out, 0))


def _slice_norm(m: nn.Module, keep: torch.Tensor) -> None:
    """BatchNorm, InstanceNorm, GroupNorm (``num_groups`` stays; one group per channel shrinks with them) and
    LayerNorm over the channels."""
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(m, name, None) is not None:
            setattr(m, name, _param(getattr(m, name), keep, 0))
    if isinstance(m, nn.LayerNorm):
        m.normalized_shape = (len(keep),)
    elif isinstance(m, nn.GroupNorm):
        if m.num_groups == m.num_channels:
            m.num_groups = len(keep)
        m.num_channels = len(keep)
        if m.num_channels % m.num_groups:
            raise ValueError(f"{m.num_channels} channels left in {m.num_groups} groups")
    else:
        setattr(m, "num_features", len(keep))   # an int (nn.Module's __setattr__ is typed for tensors and modules)


_SLICED = ("weight", "bias", "running_mean", "running_var", "in_proj_weight", "in_proj_bias")


def _replaced(m: nn.Module) -> list[torch.Tensor]:
    """The tensors of ``m`` that slicing replaces by new ones (so the copy may share them until then)."""
    if isinstance(m, CONV + (nn.Linear,)):
        outputs = m.weight.shape[0]
        return [t for n, t in (*m._parameters.items(), *m._buffers.items())
                if t is not None and (n in ("weight", "bias") or (t.ndim and t.shape[0] == outputs))]
    return [t for t in (getattr(m, n, None) for n in _SLICED) if isinstance(t, torch.Tensor)]


def _owner(modules: dict[str, nn.Module], path: str) -> tuple[nn.Module, str]:
    owner, _, attr = path.rpartition(".")
    return modules[owner], attr


def _what(module: nn.Module, name: str) -> str:
    return f"{type(module).__name__} ({name or 'model'})"


def remove_channels(graph: DependencyGraph, removed: Iterable[int]) -> nn.Module:
    """A copy of ``graph.model`` without the channels (union-find roots from ``graph.groups``) in ``removed``.

    The original model is left untouched. A removed channel must belong to a group (pinned ones never do).
    Raises ValueError naming the layer when one cannot be sliced to what the graph asks.
    """
    removed = set(removed)
    prunable = {r for g in graph.groups for r in g.channels}
    assert removed <= prunable, "remove_channels: a pinned channel was asked for"
    gone = torch.isin(graph.root_index, torch.tensor(sorted(removed), dtype=torch.long))   # per channel node
    trace = graph.trace
    originals = dict(graph.model.named_modules())
    # the layers and tensors that get sliced are replaced: share them in the copy instead of copying them first
    memo = {id(t): t for use in trace.uses for t in _replaced(use.module)}
    for path in trace.tensors:
        owner, attr = _owner(originals, path)
        memo[id(getattr(owner, attr))] = getattr(owner, attr)
    for h in trace.heads:
        for attr, _ in h.spec.head_tensors:
            memo[id(getattr(h.module, attr))] = getattr(h.module, attr)
    model = copy_module(graph.model, memo)
    modules = dict(model.named_modules())
    done: set[str] = set()
    for use in trace.uses:
        if use.name in done:
            continue
        done.add(use.name)
        m = modules[use.name]
        try:
            keep_in, keep_out = _keep(gone, use.in_index), _keep(gone, use.out_index)
            if isinstance(m, CONV + (nn.Linear,)):
                _slice_per_output(m, keep_out, len(use.out_ids))
            if isinstance(m, CONV):
                if is_grouped(m):      # every group keeps the same positions: the first group's say which
                    keep_in = keep_in[keep_in < m.in_channels // m.groups]
                _slice_conv(m, keep_in, keep_out)
            elif isinstance(m, nn.Linear):
                _slice_linear(m, keep_in, keep_out)
            elif isinstance(m, nn.MultiheadAttention):
                slice_in_projection(m, keep_in, keep_out, _param)
            else:   # a norm: its channels are its input's
                _slice_norm(m, keep_in)
        except Exception as exc:   # noqa: BLE001  a rule of the graph that does not fit this layer
            raise ValueError(f"prune: cannot slice {_what(m, use.name)}: {exc}") from None
    _slice_tensors(graph, modules, gone)
    for h in trace.heads:
        m = modules[h.name]
        try:
            apply_heads(m, h, _keep(gone, torch.tensor(h.heads, dtype=torch.long)), _param)
        except Exception as exc:   # noqa: BLE001
            raise ValueError(f"prune: cannot set the heads of {_what(m, h.name)}: {exc}") from None
    for a in trace.attrs:
        kept = int((~gone[torch.tensor(a.ids, dtype=torch.long)]).sum())
        m = modules[a.name]
        if a.index is None:
            setattr(m, a.attr, kept)
        else:
            value = list(getattr(m, a.attr))
            value[a.index] = kept
            setattr(m, a.attr, type(getattr(m, a.attr))(value))
    _keep_ties(graph.model, model)
    return model


def _keep_ties(original: nn.Module, model: nn.Module) -> None:
    """A tensor the original holds under several names (``c2.weight = c1.weight``) is one tensor in the copy too:
    each name was sliced the same way (the graph joined or pinned them), so every name gets the first's result.
    Raises ValueError naming both when the slices differ."""
    slots: dict[int, list[str]] = {}
    for path, t in (*original.named_parameters(remove_duplicate=False),
                    *original.named_buffers(remove_duplicate=False)):
        slots.setdefault(id(t), []).append(path)
    modules = dict(model.named_modules())
    for paths in (p for p in slots.values() if len(p) > 1):
        owner, attr = _owner(modules, paths[0])
        first = getattr(owner, attr)
        for path in paths[1:]:
            mod, a = _owner(modules, path)
            t = getattr(mod, a)
            if t is first:
                continue
            if t.shape != first.shape or not torch.equal(t, first):
                raise ValueError(f"prune: {paths[0]} and {path} are one tensor, sliced two ways "
                                 f"({tuple(first.shape)} and {tuple(t.shape)})")
            setattr(mod, a, first)


def _slice_tensors(graph: DependencyGraph, modules: dict[str, nn.Module], gone: torch.Tensor) -> None:
    """Parameters and buffers used outside layers, each sliced once (every name of a shared one gets it)."""
    trace = graph.trace
    names: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in modules.values():
        for attr, t in (*mod._parameters.items(), *mod._buffers.items()):
            if t is not None:
                names.setdefault(id(t), []).append((mod, attr))
    for path, use in trace.tensors.items():
        owner, attr = _owner(modules, path)
        old = getattr(owner, attr)
        new = _param(old, _keep(gone, torch.tensor(use.ids, dtype=torch.long)), use.dim)   # a copy even if whole
        for mod, a in names.get(id(old), [(owner, attr)]):
            setattr(mod, a, new)
        if isinstance(owner, nn.PReLU):
            owner.num_parameters = new.numel()


_ATOMIC = (int, float, bool, str, type(None))


def _copy_tensor(t: torch.Tensor | None, memo: dict[int, Any]) -> torch.Tensor | None:
    """``copy.deepcopy(t, memo)`` of a plain tensor or parameter without Python attributes: a clone (deepcopy's
    generic path costs about 80 Python calls a tensor)."""
    if (t is None or type(t) not in (torch.Tensor, nn.Parameter) or t.__dict__ or not t.is_leaf or t.is_quantized
            or t.is_sparse or (type(t) is torch.Tensor and t.requires_grad)):
        return copy.deepcopy(t, memo)
    new = t.detach().clone()
    if type(t) is nn.Parameter:
        new = nn.Parameter(new, requires_grad=t.requires_grad)
    memo[id(t)] = new
    return new


def copy_module(model: nn.Module, memo: dict[int, Any]) -> nn.Module:
    """``copy.deepcopy(model, memo)``, several times faster: each module of the tree is rebuilt from its
    ``__dict__`` (its tensors, submodules and attributes deep-copied through ``memo``, so shared ones stay shared;
    empty hook dicts made anew). A module class with its own copy or pickle methods is deep-copied as usual."""
    if id(model) in memo:
        return memo[id(model)]
    cls = type(model)
    if not (cls.__reduce_ex__ is object.__reduce_ex__ and cls.__reduce__ is object.__reduce__
            and cls.__getstate__ is nn.Module.__getstate__ and cls.__setstate__ is nn.Module.__setstate__
            and not hasattr(cls, "__deepcopy__") and not hasattr(cls, "__slots__")):
        return copy.deepcopy(model, memo)
    new = cls.__new__(cls)
    memo[id(model)] = new
    state: dict[str, Any] = {}
    for key, value in model.__dict__.items():
        if key == "_compiled_call_impl":        # dropped by nn.Module.__getstate__, as deepcopy does
            continue
        if key == "_modules":
            state[key] = {n: None if c is None else copy_module(c, memo) for n, c in value.items()}
        elif type(value) in _ATOMIC or (type(value) is tuple and all(type(v) in _ATOMIC for v in value)):
            state[key] = value              # immutable: deepcopy returns the same object
        elif type(value) in (dict, OrderedDict, set) and not value:
            state[key] = type(value)()
        elif key in ("_parameters", "_buffers"):
            state[key] = {n: memo[id(t)] if id(t) in memo else _copy_tensor(t, memo) for n, t in value.items()}
        else:
            state[key] = copy.deepcopy(value, memo)
    new.__setstate__(state)
    return new
