"""Tracing one forward pass into coupled channels: which channels of which layers must be removed together.

Every channel of every tensor the forward makes is a node; a :class:`_Tracer` (a ``TorchDispatchMode`` plus module
hooks, the profiler's way of seeing functional ops) joins the nodes that must go together in a union-find:

* a layer with weights (``Conv``, ``Linear``, ``BatchNorm``, ``LayerNorm`` over channels) is seen whole, through
  module hooks: a convolution makes new output channels (a depthwise one passes its input channels on), a norm
  passes its input's channels on;
* pointwise ops (``add``, ``mul``, activations...) join the channels of their inputs and output: residual
  additions and squeeze-excite gates couple their branches;
* ``cat`` along the channels concatenates the lists (channel offsets), pools and reductions over other dims keep
  them, ``view``/``flatten`` turn a channel into a block of features (flatten -> Linear);
* a depthwise convolution (``groups == in_channels``, any channel multiplier) passes each input channel on to
  its filters; another grouped convolution couples position ``j`` of every group, on each side (Torch-Pruning's
  rule: every group loses the same positions, so ``groups`` stays valid);
* anything else (an op without a rule, a transposed convolution, a parameter used outside a known layer) pins
  the channels it touches and is reported by name: a channel is pruned only when every use of it is understood.

The model's input and output channels are pinned: the classifier's outputs are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from compress.profile.shapes import meta_shortcut

__all__: list[str] = []   # internal: compress.prune.graph.build_graph runs it

aten = torch.ops.aten

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
TRACED_MODULES = CONV + NORM + (nn.Linear, nn.LayerNorm)   # traced as one layer by their channel rules


def is_depthwise(m: nn.Module) -> bool:
    """A convolution with one input channel per group (``out = m * in``: ``m`` filters per channel)."""
    return isinstance(m, CONV) and m.groups > 1 and m.groups == m.in_channels


def is_grouped(m: nn.Module) -> bool:
    """A grouped convolution that is not depthwise (``in = g * a`` with ``a > 1``)."""
    return isinstance(m, CONV) and 1 < m.groups < m.in_channels

# ops that keep the channels of their first input (other dims may change): pools, dropout, copies
_KEEP = {aten.max_pool2d_with_indices, aten.max_pool1d_with_indices, aten.max_pool2d, aten.avg_pool2d,
         aten.avg_pool1d, aten.adaptive_avg_pool2d, aten._adaptive_avg_pool2d, aten.adaptive_max_pool2d,
         aten.adaptive_avg_pool1d, aten.upsample_nearest2d, aten.upsample_bilinear2d, aten.dropout,
         aten.native_dropout, aten.feature_dropout, aten.clone, aten.detach, aten.alias, aten.contiguous,
         aten._to_copy, aten.lift_fresh, aten.expand, aten.pad, aten.constant_pad_nd}
_REDUCE = {aten.mean, aten.sum, aten.amax, aten.amin}
_SOFTMAX = {aten._softmax, aten._log_softmax, aten.softmax, aten.log_softmax}
_RESHAPE = {aten.view, aten._unsafe_view, aten.reshape, aten.squeeze, aten.unsqueeze, aten.flatten,
            aten.alias}
_PERMUTE = {aten.permute, aten.transpose, aten.t}


@dataclass
class Chan:
    """The channel structure of one tensor: along ``dim``, feature ``f`` belongs to channel node
    ``ids[f // block]`` (``block`` > 1 after a flatten: one channel is ``block`` features)."""

    dim: int
    ids: list[int]
    block: int = 1


@dataclass
class LayerUse:
    """One call of a layer with weights: the channel nodes of its input and output."""

    name: str
    module: nn.Module
    in_ids: list[int]
    in_block: int
    out_ids: list[int]

    @cached_property
    def in_index(self) -> torch.Tensor:
        return torch.tensor(self.in_ids, dtype=torch.long)

    @cached_property
    def out_index(self) -> torch.Tensor:
        return torch.tensor(self.out_ids, dtype=torch.long)


@dataclass
class Trace:
    parent: list[int] = field(default_factory=list)
    pinned: dict[int, str] = field(default_factory=dict)      # node -> why (first reason)
    uses: list[LayerUse] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)    # "what (where)" -> times seen

    def new(self, n: int, pin: str | None = None) -> list[int]:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        ids = list(range(start, start + n))
        if pin is not None:
            for i in ids:
                self.pinned[i] = pin
        return ids

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def pin(self, ids: Sequence[int], why: str) -> None:
        for i in ids:
            self.pinned.setdefault(i, why)

    def report(self, what: str) -> None:
        self.unknown[what] = self.unknown.get(what, 0) + 1


def _norm_dim(d: int, ndim: int) -> int:
    return d % ndim if ndim else 0


def _tensors(x: Any) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    return []


class _Tracer(TorchDispatchMode):
    """Joins channel nodes op by op; layers with weights are handled by module hooks and their ops skipped."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch (2.10+) wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says False: the
        # wrapper imports torch._dynamo on the first op (2.4-3 s) and adds a frame to every op. The tracer never
        # runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(self, trace: Trace, names: dict[nn.Module, str]):
        super().__init__()
        self.t = trace
        self.names = names
        self.chans: dict[int, Chan] = {}
        self.keep: list[torch.Tensor] = []      # tensors seen stay alive so their ids are never reused
        self.depth = 0                          # > 0 inside a layer handled whole
        self.where: list[str] = [""]

    # ---------------------------------------------------------------------------- bookkeeping
    def get(self, t: torch.Tensor) -> Chan | None:
        return self.chans.get(id(t))

    def set(self, t: torch.Tensor, chan: Chan) -> None:
        self.chans[id(t)] = chan
        self.keep.append(t)

    def pin_fresh(self, t: torch.Tensor, why: str) -> None:
        if t.ndim >= 1:
            self.set(t, Chan(1 if t.ndim > 1 else 0, self.t.new(t.shape[1 if t.ndim > 1 else 0], pin=why)))

    def unknown(self, what: str, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor]) -> None:
        tracked = [c for c in (self.get(x) for x in inputs) if c is not None]
        if not tracked:
            return                  # constants and parameters only: nothing to pin
        label = f"{what} ({self.where[-1] or 'model'})"
        self.t.report(label)
        for c in tracked:
            self.t.pin(c.ids, label)
        for o in outputs:
            self.pin_fresh(o, label)

    # ---------------------------------------------------------------------------- ops
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = meta_shortcut(func, args, kwargs)    # meta kernels written in Python are slow
        out = shortcut(args, kwargs) if shortcut is not None else func(*args, **kwargs)
        if self.depth == 0:
            self.op(func, args, kwargs, out)
        return out

    def op(self, func, args, kwargs, out) -> None:
        packet = func.overloadpacket
        name = str(packet).removeprefix("aten.")
        inputs, outputs = _tensors(args) + _tensors(kwargs), _tensors(out)
        if not any(id(x) in self.chans for x in inputs):
            return
        try:
            ok = self.rule(func, packet, args, kwargs, outputs)
        except Exception:   # a rule that cannot read these arguments: pin, never guess
            ok = False
        if not ok:
            self.unknown(name, inputs, outputs)

    def rule(self, func, packet, args, kwargs, outputs) -> bool:
        if packet is aten.cat:
            return self.cat(args, outputs[0])
        if torch.Tag.pointwise in func.tags:
            return self.pointwise(args, kwargs, outputs)
        x = args[0]
        c = self.get(x) if isinstance(x, torch.Tensor) else None
        if c is None:
            return False
        if packet in _KEEP:
            return self.keep_chans(c, x, outputs)
        if packet in _REDUCE:
            dims = args[1] if len(args) > 1 else kwargs.get("dim")
            keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
            if not dims:
                return False
            dims = {_norm_dim(d, x.ndim) for d in dims}
            if c.dim in dims:
                return False
            shift = 0 if keepdim else sum(1 for d in dims if d < c.dim)
            self.set(outputs[0], Chan(c.dim - shift, c.ids, c.block))
            return True
        if packet in _SOFTMAX:
            if _norm_dim(args[1], x.ndim) == c.dim:
                return False
            self.set(outputs[0], c)
            return True
        if packet in _RESHAPE:
            return self.reshape(c, x, outputs[0])
        if packet in _PERMUTE:
            return self.permute(packet, c, x, args, outputs[0])
        return False

    def keep_chans(self, c: Chan, x: torch.Tensor, outputs) -> bool:
        size = len(c.ids) * c.block
        done = False
        for o in outputs:
            if o.ndim == x.ndim and o.shape[c.dim] == size and o.is_floating_point():
                self.set(o, c)
                done = True
        return done

    def pointwise(self, args, kwargs, outputs) -> bool:
        out = outputs[0]
        chan: Chan | None = None
        operands = _tensors(args) + _tensors(kwargs)
        for x in operands:
            c = self.get(x)
            if c is None:
                continue
            d = c.dim + out.ndim - x.ndim
            if chan is None:
                chan = Chan(d, c.ids, c.block)
            elif (d, len(c.ids), c.block) != (chan.dim, len(chan.ids), chan.block):
                return False
            else:
                for a, b in zip(chan.ids, c.ids):
                    self.t.union(a, b)
        assert chan is not None
        for x in operands:    # an untracked tensor with one value per channel (a parameter used functionally)
            if self.get(x) is None:
                d = chan.dim - (out.ndim - x.ndim)
                if 0 <= d < x.ndim and x.shape[d] > 1:
                    return False
        for o in outputs:
            if o.shape == out.shape:
                self.set(o, chan)
        return True

    def cat(self, args, out: torch.Tensor) -> bool:
        tensors, dim = args[0], _norm_dim(args[1] if len(args) > 1 else 0, out.ndim)
        chans = [self.get(x) for x in tensors]
        if any(c is None for c in chans) or len({(c.dim, c.block) for c in chans}) != 1:
            return False
        first = chans[0]
        if dim == first.dim:
            self.set(out, Chan(dim, [i for c in chans for i in c.ids], first.block))
            return True
        if len({len(c.ids) for c in chans}) != 1:
            return False
        for c in chans[1:]:
            for a, b in zip(first.ids, c.ids):
                self.t.union(a, b)
        self.set(out, first)
        return True

    def reshape(self, c: Chan, x: torch.Tensor, out: torch.Tensor) -> bool:
        """A reshape keeps element order: the channel extent must stay one contiguous run of dims' elements."""
        shape_in, shape_out = list(x.shape), list(out.shape)
        outer = _prod(shape_in[:c.dim])
        inner_in = _prod(shape_in[c.dim + 1:])
        extent = len(c.ids) * c.block * inner_in
        for d in range(len(shape_out)):
            inner_out = _prod(shape_out[d + 1:])
            if (_prod(shape_out[:d]) == outer and shape_out[d] * inner_out == extent
                    and (c.block * inner_in) % inner_out == 0
                    and shape_out[d] == len(c.ids) * (c.block * inner_in // inner_out)):
                self.set(out, Chan(d, c.ids, c.block * inner_in // inner_out))
                return True
        return False

    def permute(self, packet, c: Chan, x: torch.Tensor, args, out: torch.Tensor) -> bool:
        if c.block != 1:
            return False
        if packet is aten.permute:
            order = [_norm_dim(d, x.ndim) for d in args[1]]
            dim = order.index(c.dim)
        elif packet is aten.t:
            dim = 1 - c.dim if x.ndim == 2 else c.dim
        else:
            a, b = _norm_dim(args[1], x.ndim), _norm_dim(args[2], x.ndim)
            dim = b if c.dim == a else a if c.dim == b else c.dim
        self.set(out, Chan(dim, c.ids, 1))
        return True

    # ---------------------------------------------------------------------------- layers, via module hooks
    def conv_out(self, module: nn.Module, in_ids: list[int]) -> list[int]:
        """The output channel nodes of a convolution reading ``in_ids``.

        Depthwise (``groups == in_channels``, ``m = out / in`` filters per input channel): output ``k * m + j``
        is input channel ``k``'s node, so a channel goes with the channel feeding it and its ``m`` filters
        (``groups`` shrinks with it). Other grouped convolutions (``in = g * a``, ``out = g * b``), as
        Torch-Pruning's group convs: position ``j`` of every group is one channel, on the input side (the
        producer's channels ``j, a + j, 2a + j...`` go together) and on the output side, so each group loses the
        same positions and ``groups`` stays valid."""
        g = module.groups
        if g == 1:
            return self.t.new(module.out_channels)
        if is_depthwise(module):
            m = module.out_channels // g
            return [i for i in in_ids for _ in range(m)]
        a, b = module.in_channels // g, module.out_channels // g
        out_ids = self.t.new(module.out_channels)
        for k in range(1, g):
            for j in range(a):
                self.t.union(in_ids[j], in_ids[k * a + j])
            for j in range(b):
                self.t.union(out_ids[j], out_ids[k * b + j])
        return out_ids

    def layer(self, module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> None:
        name = self.names[module]
        c = self.get(x)
        if c is None:
            c = Chan(_channel_dim(module, x), self.t.new(_in_features(module), pin="an untracked input"))
        in_ids, in_block = c.ids, c.block
        ok = c.dim == _channel_dim(module, x) and len(c.ids) * c.block == _in_features(module)
        if isinstance(module, CONV):
            ok = ok and c.block == 1
            if ok:
                out_ids = self.conv_out(module, in_ids)
            else:
                why = f"{type(module).__name__} ({name})"
                self.t.report(why)
                self.t.pin(in_ids, why)
                out_ids = self.t.new(module.out_channels, pin=why)
            self.set(out, Chan(1, out_ids))
        elif isinstance(module, nn.Linear):
            if not ok:
                why = f"Linear input layout ({name})"
                self.t.report(why)
                self.t.pin(in_ids, why)
            out_ids = self.t.new(module.out_features)
            self.set(out, Chan(out.ndim - 1, out_ids))
        else:   # norms: the output has the input's channels
            if not ok or c.block != 1:
                why = f"{type(module).__name__} ({name})"
                self.t.report(why)
                self.t.pin(in_ids, why)
            out_ids = list(in_ids)
            self.set(out, Chan(c.dim, out_ids, c.block))
        self.t.uses.append(LayerUse(name, module, list(in_ids), in_block, out_ids))


def _prod(xs: Sequence[int]) -> int:
    p = 1
    for v in xs:
        p *= int(v)
    return p


def _channel_dim(module: nn.Module, x: torch.Tensor) -> int:
    if isinstance(module, (nn.Linear, nn.LayerNorm)):
        return x.ndim - 1
    return 1 if x.ndim > 1 else 0


def _in_features(module: nn.Module) -> int:
    if isinstance(module, CONV):
        return module.in_channels
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1] if len(module.normalized_shape) == 1 else -1
    return module.num_features


def run_trace(model: nn.Module, example: torch.Tensor, *, on_meta: bool = True) -> tuple[Trace, torch.Tensor]:
    """Trace one forward of ``model`` on ``example`` (eval mode, no grad, flags restored); returns the trace and
    the output. The example's channels and the output's are pinned. ``on_meta``: run on meta copies of the
    weights (shapes only: no arithmetic, the model's tensors untouched)."""
    trace = Trace()
    names = {m: n for n, m in model.named_modules()}
    tracer = _Tracer(trace, names)
    layers = {m for m in names if isinstance(m, TRACED_MODULES)}

    def pre(module, args):
        if module in layers:
            if tracer.depth == 0:
                tracer.where.append(names[module])
            tracer.depth += 1
        elif module in names and tracer.depth == 0:
            tracer.where.append(names[module])

    def post(module, args, out):
        if module in layers:
            tracer.depth -= 1
            if tracer.depth == 0:
                tracer.where.pop()
                x = args[0] if args else None
                if isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor):
                    tracer.layer(module, x, out)
        elif module in names and tracer.depth == 0:
            tracer.where.pop()

    example = example.detach().to("meta") if on_meta else example.detach().clone()
    tensors = None
    if on_meta:
        tensors = {k: torch.empty_like(t, device="meta") for k, t in (*model.named_parameters(remove_duplicate=False),
                                                                    *model.named_buffers(remove_duplicate=False))}
    tracer.set(example, Chan(1 if example.ndim > 1 else 0,
                             trace.new(example.shape[1 if example.ndim > 1 else 0], pin="the model's input")))
    training = {m: m.training for m in names}
    hooks = [register_module_forward_pre_hook(pre), register_module_forward_hook(post, always_call=True)]
    try:
        model.eval()
        with torch.no_grad(), tracer:
            out = torch.func.functional_call(model, tensors, (example,)) if on_meta else model(example)
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    for o in _tensors(out):
        c = tracer.get(o)
        if c is not None:
            trace.pin(c.ids, "the model's output")
    return trace, out
