"""Attention modules, traced whole: whole heads are channels, and the head count follows them.

An attention module is recognized by what it holds (as Torch-Pruning's ``num_heads`` names it, but found, not
given): ``nn.MultiheadAttention`` (self-attention, one input projection), or a module with an int ``num_heads`` /
``n_heads``, a ``Linear`` making q, k and v (``qkv`` / ``to_qkv``, ``3 x heads x head_dim`` outputs) and a ``Linear``
merging the heads (``proj`` / ``merge`` / ``out_proj``): timm's ``Attention``, torchvision's Swin and MaxViT
attentions. Its forward is not traced op by op; instead

* each head is one node, sitting at its ``head_dim`` positions of q, of k and of v and at its inputs of the merging
  layer, so a head goes whole and ``num_heads`` is rewritten (``head_dim`` never changes);
* per-head tensors follow (Swin's ``relative_position_bias_table`` and ``logit_scale``, the last layer of Swin V2's
  ``cpb_mlp``), as do a norm over the heads' outputs and an output gate (timm's ``scale_norm``, ``gated``);
* the input channels are the **embedding width**. It is pinned unless the trace is told to prune it. When the
  module reads its width from its input (``nn.MultiheadAttention``, Swin, MaxViT: ``heads x head_dim`` must equal
  the input width) the heads go only with the embedding, by count (a :class:`~compress.prune.channels.Tie`); timm's
  ``Attention`` keeps its own ``attn_dim``, so its heads are pruned on their own.

Anything else inside (another child with weights, a tensor of unknown meaning) pins the heads and is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress.prune.channels import Chan, HeadsUse, LayerUse, Tie

__all__: list[str] = []   # internal: the trace and the surgery use it

_HEADS_ATTRS = ("num_heads", "n_heads")
_QKV = ("qkv", "to_qkv")
_PROJ = ("proj", "merge", "out_proj")
_HEAD_TENSORS = {"relative_position_bias_table": -1, "logit_scale": 0}     # name -> the dim sized by heads
_PLAIN_TENSORS = ("relative_position_index", "relative_coords_table")     # no channel or head dim
_HEAD_NORMS = ("q_norm", "k_norm")                                           # over head_dim: never change


@dataclass(frozen=True)
class AttentionSpec:
    """What an attention module holds. ``qkv`` is the child making q, k, v ("" for ``nn.MultiheadAttention``'s own
    ``in_proj_weight``); ``tied``: its width is read from its input, so heads go only with the embedding."""

    heads_attr: str
    num_heads: int
    head_dim: int
    qkv: str
    proj: str
    tied: bool
    width_attrs: tuple[str, ...] = ()                   # int attributes equal to heads x head_dim (timm: attn_dim)
    head_tensors: tuple[tuple[str, int], ...] = ()      # (direct tensor, dim sized by heads)
    head_layers: tuple[str, ...] = ()                   # child Linear layers with one output per head
    width_layers: tuple[str, ...] = ()                  # child layers over heads x head_dim (a norm, a gate)
    problem: str | None = None                          # why the heads cannot go (pins them)


def _linear(module: nn.Module, names: tuple[str, ...]) -> tuple[str, nn.Linear] | None:
    for n in names:
        child = getattr(module, n, None)
        if isinstance(child, nn.Linear):
            return n, child
    return None


def attention_spec(module: nn.Module) -> AttentionSpec | None:
    """The :class:`AttentionSpec` of an attention module, or None for any other module."""
    if isinstance(module, nn.MultiheadAttention):
        problem = None
        if not module._qkv_same_embed_dim or module.in_proj_weight is None:
            problem = "separate q, k, v projections"
        elif module.bias_k is not None or module.bias_v is not None:
            problem = "add_bias_kv"
        return AttentionSpec("num_heads", module.num_heads, module.head_dim, "", "out_proj", True,
                             problem=problem)
    heads_attr = next((a for a in _HEADS_ATTRS if type(getattr(module, a, None)) is int), None)
    qkv, proj = _linear(module, _QKV), _linear(module, _PROJ)
    if heads_attr is None or qkv is None or proj is None:
        return None
    heads = getattr(module, heads_attr)
    width = proj[1].in_features
    if heads < 1 or qkv[1].out_features != 3 * width or width % heads:
        return None
    head_dim = width // heads
    tied = getattr(module, "attn_dim", None) != width       # timm's Attention reshapes to its own attn_dim
    problems, head_tensors, head_layers, width_layers = [], [], [], []
    for name, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]:
        if name in _HEAD_TENSORS and t.ndim and t.shape[_HEAD_TENSORS[name]] == heads:
            head_tensors.append((name, _HEAD_TENSORS[name] % t.ndim))
        elif name not in _PLAIN_TENSORS:
            problems.append(f"tensor {name}")
    for name, child in module.named_children():
        if name in (qkv[0], proj[0]) or next(child.parameters(), None) is None:
            continue
        if name in _HEAD_NORMS and _width(child) == head_dim:
            continue
        last = list(child.modules())[-1]
        if name == "cpb_mlp" and isinstance(last, nn.Linear) and last.out_features == heads:
            head_layers.append(f"{name}.{[n for n, _ in child.named_modules()][-1]}")
        elif name in ("norm", "gate") and _width(child) == width and not list(child.children()):
            width_layers.append(name)
        else:
            problems.append(f"part {name} ({type(child).__name__})")
    width_attrs = tuple(a for a in ("attn_dim",) if getattr(module, a, None) == width)
    return AttentionSpec(heads_attr, heads, head_dim, qkv[0], proj[0], tied, width_attrs, tuple(head_tensors),
                         tuple(head_layers), tuple(width_layers), "; ".join(problems) or None)


def _width(m: nn.Module) -> int | None:
    if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) == 1:
        return m.normalized_shape[0]
    if isinstance(m, nn.Linear):
        return m.out_features
    return getattr(m, "num_features", None)


def _child(module: nn.Module, path: str) -> nn.Module:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def trace_attention(tracer: Any, name: str, module: nn.Module, spec: AttentionSpec, args: tuple, out: Any) -> None:
    """The trace rule of an attention module called on ``args`` with output ``out`` (see the module docstring).
    ``tracer``: the running ``compress.prune.trace`` tracer (``get``, ``set``, ``t``, ``embedding``, ``seen``)."""
    t = tracer.t
    label = f"{type(module).__name__} ({name})"
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    y = out[0] if isinstance(out, (tuple, list)) and out else out
    c = tracer.get(x) if x is not None else None
    fits = (x is not None and c is not None and isinstance(y, torch.Tensor) and c.dim == x.ndim - 1
            and len(c.ids) == x.shape[-1] and y.ndim == x.ndim and y.shape[-1] == _child(module, spec.proj).out_features)
    if isinstance(module, nn.MultiheadAttention):
        fits = fits and len(args) >= 3 and args[1] is x and args[2] is x       # self-attention only
    if not fits or spec.problem is not None and spec.tied:
        why = f"{label}: {spec.problem or 'not a self-attention on channels-last tokens'}"
        t.report(why)
        if c is not None:
            t.pin(c.ids, why)
        for o in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(o, torch.Tensor) and o.ndim >= 1:
                tracer.set(o, Chan(o.ndim - 1, t.new(o.shape[-1], pin=why)))
        return
    assert x is not None and c is not None and isinstance(y, torch.Tensor)   # what fits checked
    if name in tracer.seen:          # called again: the same heads and outputs, the inputs joined
        first = tracer.seen[name]
        t.union_all(first.in_ids, c.ids)
        tracer.set(y, Chan(y.ndim - 1, first.out_ids))
        return
    hd = spec.head_dim
    heads = t.new(spec.num_heads)
    per_head = [h for h in heads for _ in range(hd)]
    proj = _child(module, spec.proj)
    proj_out = t.new(proj.out_features)
    if spec.tied:
        t.union_all(proj_out, c.ids)        # the output is read back at the input's width
    qkv_use = LayerUse(f"{name}.{spec.qkv}" if spec.qkv else name, _child(module, spec.qkv) if spec.qkv else module,
                       list(c.ids), per_head * 3)
    uses = [qkv_use, LayerUse(f"{name}.{spec.proj}", proj, per_head, proj_out)]
    for layer in spec.width_layers:       # a norm over the heads' outputs, a gate making them
        child = _child(module, layer)
        uses.append(LayerUse(f"{name}.{layer}", child, per_head if not isinstance(child, nn.Linear) else list(c.ids),
                             per_head))
    for layer in spec.head_layers:        # Swin V2's cpb_mlp: its last layer makes one bias per head
        child = _child(module, layer)
        uses.append(LayerUse(f"{name}.{layer}", child, t.new(child.in_features, pin=f"{label}: {layer}'s inputs"),
                             list(heads)))
    t.uses.extend(uses)
    tracer.seen[name] = LayerUse(name, module, list(c.ids), proj_out)
    t.heads.append(HeadsUse(name, module, spec, heads))
    if spec.problem is not None:
        why = f"{label}: {spec.problem}"
        t.report(why)
        t.pin(heads, why)
    if not tracer.embedding:
        t.pin(c.ids, f"the embedding width (into {name}; prune_embedding=True prunes it)")
        if spec.tied:
            t.pin(heads, f"the heads of {name} (they go with the embedding width: prune_embedding=True)")
    elif spec.tied:
        t.ties.append(Tie(name, heads, list(c.ids), hd))
    tracer.set(y, Chan(y.ndim - 1, proj_out))


def slice_in_projection(m: nn.MultiheadAttention, keep_in: torch.Tensor, keep_out: torch.Tensor, param) -> None:
    """``nn.MultiheadAttention``'s q, k, v projection: rows ``keep_out`` (whole heads), columns ``keep_in``; its
    embedding width follows the input (``head_dim`` stays; ``num_heads`` is set by :func:`apply_heads`)."""
    m.in_proj_weight = param(param(m.in_proj_weight, keep_out, 0), keep_in, 1)
    m.in_proj_bias = param(m.in_proj_bias, keep_out, 0)
    m.embed_dim = m.kdim = m.vdim = len(keep_in)


def apply_heads(m: nn.Module, use: HeadsUse, kept: torch.Tensor, param) -> None:
    """Rewrite the head count (and ``heads x head_dim`` attributes) of attention ``m`` to the ``kept`` heads
    (indices into ``use.heads``) and slice its per-head tensors."""
    spec = use.spec
    setattr(m, spec.heads_attr, len(kept))
    for attr in spec.width_attrs:
        setattr(m, attr, len(kept) * spec.head_dim)
    for tensor, dim in spec.head_tensors:
        setattr(m, tensor, param(getattr(m, tensor), kept, dim))
    if isinstance(m, nn.MultiheadAttention) and m.embed_dim != m.num_heads * m.head_dim:
        raise ValueError(f"{m.num_heads} heads of {m.head_dim} for an embedding of {m.embed_dim}")
