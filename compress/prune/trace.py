"""Tracing one forward pass into coupled channels: which channels of which layers must be removed together.

Every channel of every tensor the forward makes is a node (:mod:`compress.prune.channels`); a :class:`_Tracer` (a
``TorchDispatchMode`` plus module hooks, the profiler's way of seeing functional ops) joins the nodes that must go
together in a union-find:

* a layer with weights is seen whole, through module hooks: a convolution makes new output channels (a depthwise
  one passes its input channels on; another grouped one couples position ``j`` of every group, on each side, as
  Torch-Pruning does, so ``groups`` stays valid), a ``Linear`` makes new features, BatchNorm / InstanceNorm pass
  their input's channels on, GroupNorm too (position ``j`` of every group together, so ``num_groups`` stays);
* an attention module is seen whole too (:mod:`compress.prune.attention`): its heads are nodes;
* every other op goes through its rule in :mod:`compress.prune.ops` (elementwise ops, concatenation, reshapes and
  channel shuffles, permutes, splits, reductions, ``layer_norm``...). Parameters used by ops outside a layer (a
  layer scale, a position embedding, a class token) are followed through views and sliced with the channels;
* anything else (an op without a rule, a transposed convolution, a layer's parameter used outside it) pins the
  channels it touches and is reported by name: a channel is pruned only when every use of it is understood.

The model's input and output channels are pinned: the classifier's outputs are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, cast

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from compress.profile.shapes import meta_shortcut
from compress.prune.attention import AttentionSpec, attention_spec, trace_attention
from compress.prune.channels import AttrUse, Chan, LayerUse, Trace, TensorUse
from compress.prune.ops import elementwise, find_rule

__all__: list[str] = []   # internal: compress.prune.graph.build_graph runs it

aten = torch.ops.aten

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)   # num_features, running stats
TRACED_MODULES = CONV + NORM + (nn.Linear, nn.GroupNorm)     # traced as one layer by their channel rules


def is_depthwise(m: nn.Module) -> bool:
    """A convolution with one input channel per group (``out = m * in``: ``m`` filters per channel)."""
    return isinstance(m, CONV) and m.groups > 1 and m.groups == m.in_channels


def is_grouped(m: nn.Module) -> bool:
    """A grouped convolution that is not depthwise (``in = g * a`` with ``a > 1``)."""
    return isinstance(m, CONV) and 1 < m.groups < m.in_channels


def passes_channels(m: nn.Module) -> bool:
    """A layer whose outputs are its input's channels (a norm, a depthwise conv): it makes none."""
    return isinstance(m, NORM + (nn.GroupNorm, nn.LayerNorm)) or is_depthwise(m)


@dataclass(frozen=True)
class _Origin:
    """A tensor that is (a view of, or an elementwise function of) parameters: for each, its path and which of
    its dims each of this tensor's dims is (None: broadcast). ``fixed``: dims sized by a tensor that is not one."""

    entries: tuple[tuple[str, tuple[int | None, ...]], ...]
    fixed: frozenset[int] = frozenset()
    shape_attrs: tuple[tuple[str, nn.Module, str, int | None, int], ...] = ()   # (module, attr, index, dim) sizes


_VIEWS = {aten.view, aten._unsafe_view, aten.reshape, aten.squeeze, aten.unsqueeze, aten.flatten, aten.unflatten}
_SAME = {aten.clone, aten.detach, aten.alias, aten.contiguous, aten._to_copy, aten.lift_fresh}
_VIEW_LIKE = _VIEWS | _SAME | {aten.expand, aten.permute, aten.transpose, aten.t, aten.select, aten.slice}


def _source_dim(packet, x: torch.Tensor, out: torch.Tensor, args) -> Callable[[int], int | None] | None:
    """For a view-like op of ``x``: which dim of ``x`` each dim of ``out`` is (None: a new or broadcast dim);
    None when the op mixes dims."""
    if packet in _SAME:
        return (lambda d: d) if out.shape == x.shape else None
    if packet in _VIEWS:        # only size-1 dims come or go
        big_in = [i for i, s in enumerate(x.shape) if s != 1]
        big_out = [i for i, s in enumerate(out.shape) if s != 1]
        if [x.shape[i] for i in big_in] != [out.shape[i] for i in big_out]:
            return None
        return dict(zip(big_out, big_in)).get
    if packet is aten.expand:
        lead = out.ndim - x.ndim
        return lambda d: d - lead if d >= lead and x.shape[d - lead] == out.shape[d] else None
    if packet in (aten.permute, aten.transpose, aten.t):
        order = list(range(x.ndim))
        if packet is aten.permute:
            order = [d % x.ndim for d in args[1]]
        elif packet is aten.transpose:
            a, b = args[1] % x.ndim, args[2] % x.ndim
            order[a], order[b] = order[b], order[a]
        else:
            order.reverse()
        return order.__getitem__
    d0 = args[1] % x.ndim        # select, slice
    if packet is aten.select:
        return lambda d: d if d < d0 else d + 1
    return lambda d: d if d != d0 or out.shape == x.shape else None


def output_tensors(x: Any) -> list[torch.Tensor]:
    """The tensors of ``x`` (a tensor, or tuples, lists and dicts of them, in order)."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in output_tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in output_tensors(v)]
    return []


class _Tracer(TorchDispatchMode):
    """Joins channel nodes op by op; layers with weights are handled by module hooks and their ops skipped.

    The rules of :mod:`compress.prune.ops` and :mod:`compress.prune.attention` call ``get``, ``set``, ``t`` (the
    :class:`~compress.prune.channels.Trace`), ``param_use``, ``attr_use``, ``layer_use``, ``current``,
    ``embedding`` and ``seen``."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch (2.10+) wraps a mode's __torch_dispatch__ in torch._dynamo.disable unless this says False: the
        # wrapper imports torch._dynamo on the first op (2.4-3 s) and adds a frame to every op. The tracer never
        # runs under torch.compile, so there is nothing to disable.
        return False

    def __init__(self, trace: Trace, names: dict[nn.Module, str], specs: dict[nn.Module, AttentionSpec], *,
                 embedding: bool, frozen: dict[nn.Module, str] | None = None,
                 opaque: dict[nn.Module, str] | None = None):
        super().__init__()
        self.frozen = frozen or {}              # module -> the kept-whole path it is under
        self.opaque = opaque or {}              # module -> why every channel its own forward sees stays
        self.t = trace
        self.names = names
        self.specs = specs
        self.embedding = embedding
        self.chans: dict[int, Chan] = {}
        self.origins: dict[int, _Origin] = {}
        self.keep: list[torch.Tensor] = []      # tensors seen stay alive so their ids are never reused
        self.depth = 0                          # > 0 inside a layer handled whole
        self.stack: list[nn.Module] = []        # the modules running (outside layers handled whole)
        self.seen: dict[str, LayerUse] = {}     # a layer's first call, by name
        self.unfit: dict[str, str] = {}         # layers a call of which no rule could read -> why (kept whole)

    # ---------------------------------------------------------------------------- what the rules call
    def get(self, t: torch.Tensor) -> Chan | None:
        return self.chans.get(id(t))

    def set(self, t: torch.Tensor, chan: Chan) -> None:
        self.chans[id(t)] = chan
        self.keep.append(t)

    def current(self) -> tuple[str, nn.Module | None]:
        m = self.stack[-1] if self.stack else None
        return (self.names.get(m, "") if m is not None else ""), m

    def param_use(self, x: torch.Tensor, dim: int, ids: list[int]) -> bool:
        """``x`` is a parameter (or a view of one) whose ``dim`` runs along ``ids``: record the slicing. False when
        it is not one (a constant: its values could not follow the channels)."""
        origin = self.origins.get(id(x))
        if origin is None or dim in origin.fixed:
            return False
        found = [(path, src) for path, dims in origin.entries if (src := dims[dim]) is not None]
        if not found:
            return False
        for name, m, attr, index, d in origin.shape_attrs:     # the view's size came from an attribute
            if d == dim:
                self.t.attrs.append(AttrUse(name, m, attr, list(ids), index))
        for path, src in found:
            use = self.t.tensors.get(path)
            if use is None:
                self.t.tensors[path] = TensorUse(path, src, list(ids))
            elif use.dim != src or len(use.ids) != len(ids):
                return False
            else:
                self.t.union_all(use.ids, ids)
        return True

    def attr_use(self, size: int, ids: list[int]) -> bool:
        """An int attribute of the running module equal to ``size`` (a channel count a reshape or split reads,
        ``self.hidden_dim``) follows the channels kept along ``ids``."""
        name, m = self.current()
        if m is not None:
            for attr, value in vars(m).items():
                if type(value) is int and value == size and not attr.startswith("_"):
                    self.t.attrs.append(AttrUse(name, m, attr, list(ids)))
        return True

    def layer_use(self, name: str, module: nn.Module, in_ids: list[int], out_ids: list[int]) -> list[int]:
        """Record a layer; a layer called again has its inputs joined to its first call's (one slicing serves
        both) and gives the first call's outputs."""
        first = self.seen.get(name)
        if first is None:
            use = LayerUse(name, module, list(in_ids), list(out_ids))
            self.t.uses.append(use)
            self.seen[name] = use
            if name in self.unfit:      # another call of it was not understood: every call keeps it whole
                self.t.pin([*use.in_ids, *use.out_ids], self.unfit[name])
            return use.out_ids
        if len(first.in_ids) != len(in_ids):
            why = f"{type(module).__name__} ({name}) called on two layouts"
            self.t.report(why)
            self.t.pin([*first.in_ids, *in_ids, *first.out_ids], why)
        else:
            self.t.union_all(first.in_ids, in_ids)
        return first.out_ids

    # ---------------------------------------------------------------------------- ops
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = meta_shortcut(func, args, kwargs)    # meta kernels written in Python are slow
        out = shortcut(args, kwargs) if shortcut is not None else func(*args, **kwargs)
        if self.depth == 0:
            self.op(func, args, kwargs, out)
        return out

    def op(self, func, args, kwargs, out) -> None:
        inputs = output_tensors(args) + output_tensors(kwargs)
        for x in inputs:            # which parameters and buffers the forward reached (graph: the others stay)
            origin = self.origins.get(id(x))
            if origin is not None:
                self.t.touched.update(path for path, _ in origin.entries)
        try:
            self.op_channels(func, args, kwargs, inputs, out)
        finally:
            if self.opaque and self.stack and self.stack[-1] in self.opaque:
                self.pin_seen(inputs, output_tensors(out), self.opaque[self.stack[-1]])

    def op_channels(self, func, args, kwargs, inputs, out) -> None:
        if not any(id(x) in self.chans for x in inputs):
            if self.origins and any(id(x) in self.origins for x in inputs):
                self.follow(func, args, kwargs, inputs, output_tensors(out))
            return
        outputs = output_tensors(out)
        found = find_rule(func)
        try:
            ok = found is not None and bool(outputs) and found(self, func, args, kwargs, outputs)
        except Exception:   # a rule that cannot read these arguments: pin, never guess
            ok = False
        if not ok:
            self.unknown(str(func.overloadpacket).removeprefix("aten."), inputs, outputs)
        if self.frozen and self.stack and self.stack[-1] in self.frozen:
            self.pin_all(inputs, outputs, self.stack[-1])

    def pin_all(self, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], module: nn.Module) -> None:
        """Inside a module kept whole: every channel an op or layer touches stays."""
        self.pin_seen(inputs, outputs, f"kept whole ({self.frozen[module]})")

    def pin_seen(self, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor], why: str) -> None:
        for x in (*inputs, *outputs):
            c = self.get(x)
            if c is not None:
                self.t.pin(c.ids, why)

    def unknown(self, what: str, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor],
                where: str | None = None) -> None:
        name = self.current()[0] if where is None else where
        label = f"{what} ({name or 'model'})"
        self.t.report(label)
        for x in inputs:
            c = self.get(x)
            if c is not None:
                self.t.pin(c.ids, label)
            for path, _ in (self.origins[id(x)].entries if id(x) in self.origins else ()):
                self.t.misused.setdefault(path, label)
        for o in outputs:
            if o.ndim >= 1:
                d = 1 if o.ndim > 1 else 0
                self.set(o, Chan(d, self.t.new(o.shape[d], pin=label)))

    def follow(self, func, args, kwargs, inputs, outputs) -> None:
        """Views and elementwise functions of parameters stay parameters, with their dims mapped."""
        if len(outputs) != 1:
            return
        out, packet = outputs[0], func.overloadpacket
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        o = self.origins.get(id(x)) if x is not None else None
        if x is None or o is None or packet not in _VIEW_LIKE:
            if elementwise(func):
                self.set_origin(out, self.combined(inputs, out))
            return
        source = _source_dim(packet, x, out, args)
        if source is None:
            return
        entries = tuple((path, tuple(dims[s] if s is not None and 0 <= s < len(dims) else None
                                     for s in map(source, range(out.ndim)))) for path, dims in o.entries)
        fixed = frozenset(d for d in range(out.ndim) if source(d) in o.fixed)
        self.set_origin(out, _Origin(entries, fixed, self.shape_attrs(out) if packet in _VIEWS else ()))

    def combined(self, inputs: Sequence[torch.Tensor], out: torch.Tensor) -> _Origin:
        """An elementwise function of parameters (and constants): each parameter's dims aligned by broadcasting; a
        dim a constant gives more than one value along is fixed."""
        entries, fixed = [], set()
        for t in inputs:
            lead = out.ndim - t.ndim
            src = self.origins.get(id(t))
            if src is None:
                fixed |= {d + lead for d in range(t.ndim) if t.shape[d] > 1}
                continue
            for path, dims in src.entries:
                entries.append((path, tuple(None if d < lead or t.shape[d - lead] != out.shape[d] else dims[d - lead]
                                            for d in range(out.ndim))))
            fixed |= {d + lead for d in src.fixed}
        return _Origin(tuple(entries), frozenset(fixed))

    def shape_attrs(self, out: torch.Tensor) -> tuple:
        """Attributes of the running module a view's sizes may come from: ints equal to a size, tuples and lists
        equal to the shape (``self.scale.view(self.shape)``)."""
        name, m = self.current()
        if m is None:
            return ()
        found: list[tuple[str, nn.Module, str, int | None, int]] = []
        for attr, value in vars(m).items():
            if attr.startswith("_"):
                continue
            if type(value) is int:
                found += [(name, m, attr, None, d) for d, s in enumerate(out.shape) if s == value and s > 1]
            elif isinstance(value, (tuple, list)) and list(value) == list(out.shape):
                found += [(name, m, attr, d, d) for d, s in enumerate(out.shape) if s > 1]
        return tuple(found)

    def set_origin(self, t: torch.Tensor, origin: _Origin) -> None:
        self.origins[id(t)] = origin
        self.keep.append(t)

    # ---------------------------------------------------------------------------- layers, via module hooks
    def conv_out(self, module: nn.Conv1d | nn.Conv2d | nn.Conv3d, in_ids: list[int]) -> list[int]:
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
            self.t.union_all(in_ids[:a], in_ids[k * a:(k + 1) * a])
            self.t.union_all(out_ids[:b], out_ids[k * b:(k + 1) * b])
        return out_ids

    def unfit_layer(self, name: str, why: str) -> None:
        """A call of layer ``name`` that no rule read: the layer stays whole, on every call (one slicing serves all
        of them, so the channels of its other calls are pinned too)."""
        self.unfit.setdefault(name, why)
        first = self.seen.get(name)
        if first is not None:
            self.t.pin([*first.in_ids, *first.out_ids], why)

    def layer(self, module: nn.Module, args: tuple, out: Any) -> None:
        name = self.names[module]
        spec = self.specs.get(module)
        if spec is not None:
            trace_attention(self, name, module, spec, args, out)
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None or not isinstance(out, torch.Tensor) or x.ndim == 0:
            self.unknown(f"{type(module).__name__} called without a tensor", [], output_tensors(out))
            self.unfit_layer(name, f"{type(module).__name__} called without a tensor ({name})")
            return
        dim = x.ndim - 1 if isinstance(module, nn.Linear) else (1 if x.ndim > 1 else 0)
        c = self.get(x) or Chan(dim, self.t.new(x.shape[dim], pin="an untracked input"))
        ok = c.dim == dim and len(c.ids) == _in_features(module)
        label = f"{type(module).__name__} ({name})"
        if isinstance(module, nn.Linear):
            if not ok:
                self.t.report(f"Linear input layout ({name})")
                self.t.pin(c.ids, f"Linear input layout ({name})")
                c = Chan(dim, self.t.new(module.in_features, pin=f"Linear input layout ({name})"))
            out_ids = self.layer_use(name, module, c.ids, self.t.new(module.out_features))
            self.set(out, Chan(out.ndim - 1, out_ids))
            return
        if not ok:
            self.t.report(label)
            self.t.pin(c.ids, label)
            self.unfit_layer(name, label)
            od = 1 if out.ndim > 1 else 0
            self.set(out, Chan(od, self.t.new(out.shape[od], pin=label)))
            return
        if isinstance(module, CONV):
            out_ids = self.conv_out(module, c.ids) if name not in self.seen else []
        else:
            if isinstance(module, nn.GroupNorm) and 1 < module.num_groups < module.num_channels:
                per = module.num_channels // module.num_groups      # each group keeps the same positions
                for k in range(1, module.num_groups):
                    self.t.union_all(c.ids[:per], c.ids[k * per:(k + 1) * per])
            out_ids = c.ids
        self.set(out, Chan(1 if out.ndim > 1 else 0, self.layer_use(name, module, c.ids, out_ids)))


def _in_features(module: nn.Module) -> int:
    if isinstance(module, CONV):
        return module.in_channels
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    return cast(int, module.num_features)   # a BatchNorm's (nn.Module's __getattr__ is typed for tensors and modules)


def _meta_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Meta copies of every parameter and buffer by every name (a tensor shared by two names stays one)."""
    memo: dict[int, torch.Tensor] = {}
    out = {}
    for k, t in (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)):
        if id(t) not in memo:
            memo[id(t)] = torch.empty_like(t, device="meta")
        out[k] = memo[id(t)]
    return out


class _Shapes(TorchDispatchMode):
    """Shapes only: each op through the profiler's meta shortcuts (Python meta kernels are slow)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = meta_shortcut(func, args, kwargs)
        return shortcut(args, kwargs) if shortcut is not None else func(*args, **kwargs)


def run_meta(model: nn.Module, example: torch.Tensor) -> Any:
    """``model(example)`` on meta copies of its weights and of ``example`` (eval mode, no grad, flags restored):
    the output's shapes without any arithmetic. Raises what the forward raises."""
    training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), _Shapes():
            return torch.func.functional_call(model, _meta_tensors(model), (example.detach().to("meta"),))
    finally:
        for m, flag in training.items():
            m.training = flag


def run_trace(model: nn.Module, example: torch.Tensor, *, on_meta: bool = True, embedding: bool = False,
              train: bool = False, keep_whole: Sequence[str] = (),
              opaque: Mapping[str, str] | None = None) -> tuple[Trace, Any, set[nn.Module]]:
    """Trace one forward of ``model`` on ``example`` (eval mode, or ``train`` mode on meta only; no grad; flags
    restored); returns the trace, the output and the modules that ran. The example's channels and the output's
    are pinned. ``on_meta``: run on meta copies of the weights (shapes only: no arithmetic, the model's tensors
    untouched). ``embedding``: prune a transformer's embedding width (else it is pinned). ``keep_whole``: module
    paths inside which every channel an op or layer touches is pinned. ``opaque``: module path -> why, for modules
    whose own forward holds code the trace did not run (a branch not taken): every channel that forward sees (its
    inputs and outputs, its ops', its direct submodules' inputs and outputs) is pinned. A forward on real tensors
    gets the model's buffers back as they were."""
    assert on_meta or not train, "a real forward in train mode would update BatchNorm statistics"
    trace = Trace()
    names = {m: n for n, m in model.named_modules()}
    specs = {m: s for m in names if not isinstance(m, TRACED_MODULES) and (s := attention_spec(m)) is not None}
    frozen = {m: p for p in keep_whole for n, m in model.named_modules() if n == p or n.startswith(p + ".")}
    by_path = {n: m for m, n in names.items()}
    tracer = _Tracer(trace, names, specs, embedding=embedding, frozen=frozen,
                     opaque={by_path[p]: why for p, why in (opaque or {}).items()})
    layers = {m for m in names if isinstance(m, TRACED_MODULES)} | set(specs)
    called: set[nn.Module] = set()

    def pre(module, args):
        if module not in names:
            return
        called.add(module)
        if tracer.depth == 0:
            tracer.stack.append(module)
        if module in layers:
            tracer.depth += 1

    def post(module, args, out):
        if module not in names:
            return
        if module in layers:
            tracer.depth -= 1
        if tracer.depth == 0:
            tracer.stack.pop()
            if module in layers:
                try:
                    tracer.layer(module, args, out)
                except Exception as exc:   # noqa: BLE001  a layer rule that does not fit: pinned and named
                    what = f"{type(module).__name__}: {type(exc).__name__}"
                    tracer.unknown(what, output_tensors(args), output_tensors(out), where=names[module])
                    tracer.unfit_layer(names[module], f"{what} ({names[module]})")
                if module in frozen:
                    tracer.pin_all(output_tensors(args), output_tensors(out), module)
            caller = tracer.stack[-1] if tracer.stack else None
            for m in (module, caller):
                if m in tracer.opaque:
                    tracer.pin_seen(output_tensors(args), output_tensors(out), tracer.opaque[m])

    example = example.detach().to("meta") if on_meta else example.detach().clone()
    tensors = _meta_tensors(model) if on_meta else {}
    for path, t in (tensors.items() if on_meta else
                    (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False))):
        if id(t) not in tracer.origins:
            tracer.set_origin(t, _Origin(((path, tuple(range(t.ndim))),)))
    tracer.set(example, Chan(1 if example.ndim > 1 else 0,
                             trace.new(example.shape[1 if example.ndim > 1 else 0], pin="the model's input")))
    training = {m: m.training for m in names}
    buffers = [] if on_meta else [(m, k, b, b.detach().clone()) for m in names for k, b in m._buffers.items()
                                  if b is not None]
    hooks = [register_module_forward_pre_hook(pre), register_module_forward_hook(post, always_call=True)]
    try:
        model.train(train)
        with torch.no_grad(), tracer:
            out = torch.func.functional_call(model, tensors, (example,)) if on_meta else model(example)
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag
        with torch.no_grad():     # a forward that updates a buffer (a counter, running statistics) leaves no trace
            for m, k, b, value in buffers:
                b.copy_(value)
                m._buffers[k] = b
    for o in output_tensors(out):
        c = tracer.get(o)
        if c is not None:
            trace.pin(c.ids, "the model's output")
    return trace, out, called

