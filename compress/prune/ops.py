"""The channel rules of aten ops, one function per kind of op, in a plain registry keyed by op (fvcore's shape).

A rule ``rule(tracer, func, args, kwargs, outputs) -> bool`` reads the channel structure of the op's inputs
(``tracer.get``), gives its outputs theirs (``tracer.set``), joins nodes that must go together
(``tracer.t.union``) and records the parameters it slices (``tracer.param_use``) or the int attributes it reads
(``tracer.attr_use``). It returns False when it cannot say: the tracer then pins every channel the op touches and
names the op. The rules:

* elementwise ops (``torch.Tag.pointwise``, and those torch leaves untagged: ``hardswish``, ``hardswish_``,
  ``gelu_``, ``mish_``, ``where``), in place or not, join the channels of their operands; a parameter operand
  with one value per channel (a layer scale, a position embedding) is sliced along; ``prelu``'s weight too;
* ``cat`` along the channels concatenates them (a constant's channels are pinned); along another dim, and
  ``stack``, it joins the operands' channels (a class token, a parameter, is sliced along);
* pools, dropout, copies, padding and the like keep the channels; reductions and selections over other dims keep
  them, reductions over the channels leave a tensor without any (a statistic, as a norm takes);
* reshapes keep element order: a channel becomes a block of features (flatten), or a channel dim splits into
  groups x channels, the groups kept whole (channel shuffle: position ``j`` of every group goes together);
  permutes and transposes move the channel dim; ``split``/``chunk`` into equal parts along the channels join
  position ``j`` of every part (the parts stay equal), and ``unbind``/``select`` over other dims drop a dim;
* ``layer_norm`` over the channels is the norm's own (``nn.LayerNorm`` and subclasses such as torchvision's
  ``LayerNorm2d``, after any permute) or slices the weights it is given; functional ``batch_norm`` too.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from compress.prune.channels import Chan

__all__: list[str] = []   # internal: compress.prune.trace applies them

aten = torch.ops.aten
Rule = Callable[..., bool]
RULES: dict[Any, Rule] = {}


def rule(*packets):
    def decorator(fn: Rule) -> Rule:
        for p in packets:
            if p in RULES:
                raise ValueError(f"a channel rule for {p} is already registered")
            RULES[p] = fn
        return fn
    return decorator


_UNTAGGED_ELEMENTWISE = {aten.hardswish, aten.hardswish_, aten.gelu_, aten.mish_, aten.where}


def elementwise(func) -> bool:
    return torch.Tag.pointwise in func.tags or func.overloadpacket in _UNTAGGED_ELEMENTWISE


def find_rule(func) -> Rule | None:
    found = RULES.get(func.overloadpacket)
    if found is not None:
        return found
    return pointwise if elementwise(func) else None


def bind(func, args, kwargs) -> dict[str, Any]:
    """The op's arguments by schema name (defaults filled in)."""
    out = {}
    for i, a in enumerate(func._schema.arguments):
        if i < len(args) and not a.kwarg_only:
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        else:
            out[a.name] = a.default_value if a.has_default_value() else None
    return out


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    return []


def _dim(d: int, ndim: int) -> int:
    return d % ndim if ndim else 0


# ------------------------------------------------------------------------------------------------ elementwise
def pointwise(tr, func, args, kwargs, outputs) -> bool:
    out = outputs[0]
    chan: Chan | None = None
    operands = _tensors(args) + _tensors(kwargs)
    for x in operands:
        c = tr.get(x)
        if c is None:
            continue
        d = c.dim + out.ndim - x.ndim
        if x.shape[c.dim] != out.shape[d]:
            return False            # a one-channel tensor broadcast over many
        if chan is None:
            chan = Chan(d, c.ids)
        elif d != chan.dim or len(c.ids) != len(chan.ids):
            return False
        else:
            tr.t.union_all(chan.ids, c.ids)
    assert chan is not None
    for x in operands:              # an untracked operand with one value per channel: a parameter, sliced along
        if tr.get(x) is None:
            d = chan.dim - (out.ndim - x.ndim)
            if 0 <= d < x.ndim and x.shape[d] > 1 and not tr.param_use(x, d, chan.ids):
                return False
    for o in outputs:
        if o.shape == out.shape:
            tr.set(o, chan)
    return True


@rule(aten._prelu_kernel)
def prelu(tr, func, args, kwargs, outputs) -> bool:
    x, weight = args[0], args[1]
    c = tr.get(x)
    if weight.numel() != 1 and (c.dim != 1 or not tr.param_use(weight, 0, c.ids)):
        return False
    tr.set(outputs[0], c)
    return True


_LIKE = {aten.zeros_like, aten.ones_like, aten.empty_like, aten.full_like, aten.rand_like, aten.randn_like,
         aten.randint_like, aten.bernoulli, aten.fill_, aten.zero_, aten.bernoulli_, aten.uniform_, aten.normal_,
         aten.exponential_}


@rule(*_LIKE)
def like(tr, func, args, kwargs, outputs) -> bool:
    """A tensor shaped like a tracked one (noise, a mask, zeros): its positions are that tensor's channels."""
    x, c = args[0], tr.get(args[0])
    for o in outputs:
        if o.shape == x.shape:
            tr.set(o, c)
    return True


# ------------------------------------------------------------------------------------------------ concatenation
@rule(aten.cat)
def cat(tr, func, args, kwargs, outputs) -> bool:
    b = bind(func, args, kwargs)
    tensors, out = [t for t in b["tensors"] if t.numel() or t.ndim > 1], outputs[0]
    dim = _dim(b["dim"], out.ndim)
    chans = [tr.get(x) for x in tensors]
    first = next(c for c in chans if c is not None)
    if any(c is not None and c.dim != first.dim for c in chans):
        return False
    if dim == first.dim:            # along the channels: a constant's (or a parameter's) channels are pinned
        ids: list[int] = []
        for x, c in zip(tensors, chans):
            ids += c.ids if c is not None else tr.t.new(x.shape[dim], pin="channels concatenated from a constant")
        tr.set(out, Chan(dim, ids))
        return True
    for x, c in zip(tensors, chans):
        if c is None:
            if x.shape[first.dim] > 1 and not tr.param_use(x, first.dim, first.ids):
                return False
        elif len(c.ids) != len(first.ids):
            return False
        else:
            tr.t.union_all(first.ids, c.ids)
    tr.set(out, first)
    return True


@rule(aten.stack)
def stack(tr, func, args, kwargs, outputs) -> bool:
    """Stacking along a new dim joins the operands' channels (as a ``cat`` along another dim does)."""
    b = bind(func, args, kwargs)
    out = outputs[0]
    new = _dim(b["dim"], out.ndim)
    chans = [tr.get(x) for x in b["tensors"]]
    first = next(c for c in chans if c is not None)
    for x, c in zip(b["tensors"], chans):
        if c is None:
            if x.shape[first.dim] > 1 and not tr.param_use(x, first.dim, first.ids):
                return False
        elif c.dim != first.dim or len(c.ids) != len(first.ids):
            return False
        else:
            tr.t.union_all(first.ids, c.ids)
    tr.set(out, Chan(first.dim + (new <= first.dim), first.ids))
    return True


# ------------------------------------------------------------------------------------------------ keeping channels
_KEEP = {aten.max_pool2d_with_indices, aten.max_pool1d_with_indices, aten.max_pool3d_with_indices, aten.max_pool2d,
         aten.max_pool1d, aten.avg_pool2d, aten.avg_pool1d, aten.avg_pool3d, aten.adaptive_avg_pool2d,
         aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d, aten.adaptive_avg_pool1d, aten.adaptive_max_pool1d,
         aten._adaptive_avg_pool3d, aten.upsample_nearest2d, aten.upsample_bilinear2d, aten.upsample_nearest1d,
         aten.upsample_bicubic2d, aten._upsample_nearest_exact2d, aten.dropout, aten.native_dropout,
         aten.feature_dropout, aten.clone, aten.detach, aten.alias, aten.contiguous, aten._to_copy, aten.lift_fresh,
         aten.pad, aten.constant_pad_nd, aten.reflection_pad2d, aten.replication_pad2d, aten.reflection_pad1d,
         aten._log_softmax, aten._softmax, aten.softmax, aten.log_softmax, aten.max_unpool2d}


@rule(*_KEEP)
def keep(tr, func, args, kwargs, outputs) -> bool:
    """Pools, dropout, copies, softmax (over any dim: the channels stay where they are), padding of other dims."""
    x = args[0]
    c = tr.get(x)
    done = False
    for o in outputs:
        if o.ndim == x.ndim and o.shape[c.dim] == len(c.ids) and o.is_floating_point():
            tr.set(o, c)
            done = True
    return done


@rule(aten.as_strided_)
def restride(tr, func, args, kwargs, outputs) -> bool:
    """In place, new strides for the same shape (a meta kernel giving a pool's output its memory format)."""
    x = args[0]
    if list(args[1]) != list(x.shape):
        return False
    tr.set(outputs[0], tr.get(x))
    return True


@rule(aten.expand)
def expand(tr, func, args, kwargs, outputs) -> bool:
    x, out = args[0], outputs[0]
    c = tr.get(x)
    d = c.dim + out.ndim - x.ndim
    if out.shape[d] != len(c.ids):
        return False
    tr.set(out, Chan(d, c.ids))
    return True


_REDUCE = {aten.mean, aten.sum, aten.amax, aten.amin, aten.max, aten.min, aten.var, aten.std, aten.var_mean,
           aten.std_mean, aten.logsumexp, aten.linalg_vector_norm, aten.argmax, aten.argmin, aten.prod, aten.all,
           aten.any, aten.norm}


@rule(*_REDUCE)
def reduce(tr, func, args, kwargs, outputs) -> bool:
    """Over other dims the channels stay (shifted if the dims go); over the channels the result has none: a
    statistic over fewer channels is still well formed (a norm over the channels takes one)."""
    b = bind(func, args, kwargs)
    x = args[0]
    c = tr.get(x)
    dims = b.get("dim")
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        return True
    dims = {_dim(d, x.ndim) for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
    if c.dim in dims:
        return True
    shift = 0 if b.get("keepdim") else sum(1 for d in dims if d < c.dim)
    for o in outputs:
        if o.ndim > c.dim - shift and o.shape[c.dim - shift] == len(c.ids):
            tr.set(o, Chan(c.dim - shift, c.ids))
    return True


@rule(aten.select)
def select(tr, func, args, kwargs, outputs) -> bool:
    x, c = args[0], tr.get(args[0])
    d = _dim(args[1], x.ndim)
    if d == c.dim:
        return False
    tr.set(outputs[0], Chan(c.dim - (d < c.dim), c.ids))
    return True


@rule(aten.slice, aten.index_select, aten.roll, aten.flip)
def along_other_dims(tr, func, args, kwargs, outputs) -> bool:
    """Slicing, indexing, rolling or flipping other dims keeps the channels; a slice of all channels too."""
    x, c, out = args[0], tr.get(args[0]), outputs[0]
    b = bind(func, args, kwargs)
    dims = b.get("dim", b.get("dims"))
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if not dims or any(_dim(d, x.ndim) == c.dim for d in dims):
        if func.overloadpacket is not aten.slice or out.shape != x.shape:
            return False
    tr.set(out, c)
    return True


@rule(aten.unbind)
def unbind(tr, func, args, kwargs, outputs) -> bool:
    x, c = args[0], tr.get(args[0])
    d = _dim(bind(func, args, kwargs)["dim"], x.ndim)
    if d == c.dim:
        return False
    for o in outputs:
        tr.set(o, Chan(c.dim - (d < c.dim), c.ids))
    return True


@rule(aten.split, aten.split_with_sizes, aten.unsafe_split, aten.unsafe_split_with_sizes, aten.chunk)
def split(tr, func, args, kwargs, outputs) -> bool:
    """Equal parts along the channels: position ``j`` of every part goes together, so the parts stay equal (the
    model splits the pruned tensor into the same number of parts); along other dims the channels stay."""
    x, c = args[0], tr.get(args[0])
    d = _dim(bind(func, args, kwargs)["dim"], x.ndim)
    if d != c.dim:
        for o in outputs:
            tr.set(o, c)
        return True
    sizes = {o.shape[d] for o in outputs}
    if len(sizes) != 1:
        return False
    part = sizes.pop()
    for k in range(1, len(outputs)):
        tr.t.union_all(c.ids[:part], c.ids[k * part:(k + 1) * part])
    if len(outputs) > 1:
        tr.attr_use(part, c.ids[:part])
    for k, o in enumerate(outputs):
        tr.set(o, Chan(d, c.ids[k * part:(k + 1) * part]))
    return True


# ------------------------------------------------------------------------------------------------ layout
_RESHAPE = {aten.view, aten._unsafe_view, aten.reshape, aten.squeeze, aten.unsqueeze, aten.flatten,
            aten.unflatten}


def _prod(xs) -> int:
    p = 1
    for v in xs:
        p *= int(v)
    return p


@rule(*_RESHAPE)
def reshape(tr, func, args, kwargs, outputs) -> bool:
    """A reshape keeps element order. Within one example the channel dim and the dims after it form a slab
    (``len(ids) x inner`` elements); the output dims covering the slab must give each channel whole: a channel
    becomes ``inner / S`` positions of the dim whose inner size ``S`` divides ``inner`` (a flatten makes a channel a
    block of features), and any dims before that one split the channels into groups whose position ``j`` goes
    together (a channel shuffle's ``view(b, groups, c / groups, h, w)``: the groups stay, their width shrinks).
    Other layouts (dims before the channels merged into them, as Swin's patch merging does) are read from the
    channel of every element (:func:`_reshape_by_labels`). An output size stored in an int attribute of the running
    module (``self.hidden_dim``) follows the pruning."""
    x, out = args[0], outputs[0]
    c = tr.get(x)
    shape_in, shape_out = list(x.shape), list(out.shape)
    outer, inner = _prod(shape_in[:c.dim]), _prod(shape_in[c.dim + 1:])
    starts = [d for d in range(len(shape_out)) if _prod(shape_out[:d]) == outer]
    if not starts or outer * len(c.ids) * inner != _prod(shape_out):
        return _reshape_by_labels(tr, c, x, out)
    d0 = starts[-1]
    j0 = next(j for j in range(d0, len(shape_out)) if _prod(shape_out[j + 1:]) <= inner)
    s = _prod(shape_out[j0 + 1:])
    if inner % s or any(_prod(shape_out[j + 1:]) % inner for j in range(d0, j0)):
        return _reshape_by_labels(tr, c, x, out)
    m = inner // s                                  # positions per channel along dim j0
    if shape_out[j0] % m:
        return _reshape_by_labels(tr, c, x, out)
    per_group = shape_out[j0] // m                  # channels along dim j0; dims d0..j0-1 are groups of them
    for g in range(1, len(c.ids) // per_group):
        tr.t.union_all(c.ids[:per_group], c.ids[g * per_group:(g + 1) * per_group])
    ids = [c.ids[f // m] for f in range(shape_out[j0])]
    tr.attr_use(shape_out[j0], ids)
    tr.set(out, Chan(j0, ids))
    return True


_LABEL_LIMIT = 1 << 23      # elements: above, a layout the closed form above does not cover is pinned


def _reshape_by_labels(tr, c: Chan, x: torch.Tensor, out: torch.Tensor) -> bool:
    """Label every element with its channel's position, reshape the labels as the op does, and read where the
    channels went: along one output dim (each position one channel: merged with other dims, before or after), or
    along several, the innermost one carrying them and the others groups whose position ``j`` goes together."""
    if x.numel() > _LABEL_LIMIT or x.numel() == 0:
        return False
    shape = [1] * x.ndim
    shape[c.dim] = len(c.ids)
    labels = torch.arange(len(c.ids)).view(shape).expand(x.shape).reshape(out.shape)
    varying = [d for d in range(out.ndim) if out.shape[d] > 1 and
               bool((labels != labels.narrow(d, 0, 1)).any())]
    if not varying:
        return False
    j = varying[-1]
    index = [0] * out.ndim
    along = []
    for f in range(out.shape[j]):
        index[j] = f
        along.append(int(labels[tuple(index)]))
    if len(varying) > 1:           # groups of channels: position f along j is one channel in every group
        moved = labels.movedim(j, -1).reshape(-1, out.shape[j])
        for row in moved.unique(dim=0).tolist():
            tr.t.union_all([c.ids[k] for k in along], [c.ids[k] for k in row])
    ids = [c.ids[k] for k in along]
    tr.attr_use(out.shape[j], ids)
    tr.set(out, Chan(j, ids))
    return True


@rule(aten.permute, aten.transpose, aten.t, aten.movedim)
def permute(tr, func, args, kwargs, outputs) -> bool:
    x, c = args[0], tr.get(args[0])
    packet = func.overloadpacket
    if packet is aten.permute:
        dim = [_dim(d, x.ndim) for d in args[1]].index(c.dim)
    elif packet is aten.t:
        dim = 1 - c.dim if x.ndim == 2 else c.dim
    elif packet is aten.movedim:
        return False
    else:
        a, b = _dim(args[1], x.ndim), _dim(args[2], x.ndim)
        dim = b if c.dim == a else a if c.dim == b else c.dim
    tr.set(outputs[0], Chan(dim, c.ids))
    return True


# ------------------------------------------------------------------------------------------------ norms
@rule(aten.native_layer_norm)
def layer_norm(tr, func, args, kwargs, outputs) -> bool:
    """Over the channels (the last dim): the ``nn.LayerNorm`` running it is sliced as a norm; weights given
    functionally are sliced as tensors. Over another last dim the channels stay and nothing is sliced."""
    b = bind(func, args, kwargs)
    x, shape = b["input"], list(b["normalized_shape"])
    c = tr.get(x)
    if c.dim != x.ndim - 1:
        if c.dim >= x.ndim - len(shape):
            return False
        tr.set(outputs[0], c)
        return True
    if len(shape) != 1:
        return False
    name, module = tr.current()
    weight, bias = b["weight"], b["bias"]
    if isinstance(module, nn.LayerNorm) and weight is module.weight:
        tr.layer_use(name, module, c.ids, c.ids)
    else:
        for t in (weight, bias):
            if t is not None and not tr.param_use(t, 0, c.ids):
                return False
    tr.set(outputs[0], c)
    return True


@rule(aten._native_batch_norm_legit_no_training, aten._native_batch_norm_legit, aten.native_batch_norm,
      aten._native_batch_norm_legit_functional)
def batch_norm(tr, func, args, kwargs, outputs) -> bool:
    """``F.batch_norm`` outside a BatchNorm module (timm's frozen norms): its tensors are sliced along."""
    b = bind(func, args, kwargs)
    x = b["input"]
    c = tr.get(x)
    if c.dim != 1:
        return False
    for k in ("weight", "bias", "running_mean", "running_var"):
        t = b.get(k)
        if isinstance(t, torch.Tensor) and not tr.param_use(t, 0, c.ids):
            return False
    tr.set(outputs[0], c)
    return True
