"""The dependency graph: coupled channels grouped by the layers that make them.

:func:`build_graph` traces one forward (:mod:`compress.prune.trace`) and returns a :class:`DependencyGraph`:

* a **channel** is one set of coupled channel nodes (removing it removes one channel from every tensor, weight
  and norm it reaches; an attention head is one channel of its attention);
* a **group** is the channels made by the same set of layers (all output channels of ``features.0.conv`` and
  its BatchNorm; every channel of one residual chain; the half of a concatenation one branch makes; position
  ``j`` of every group of a grouped conv's output is one channel; the heads of one attention): per-layer ratios
  act on a group, ``round_to`` and ``min_width`` hold per group;
* **pinned** channels (the input's, the classifier's outputs, those of ``ignored_layers``, a transformer's
  embedding width unless asked, anything an unknown op touches) are in no group, and ``graph.unknown`` names what
  pinned them, where no rule said why;
* **ties**: an attention whose width is read from its input keeps ``heads x head_dim == embedding width``, so its
  heads group and the embedding group it reads are pruned by count together (``schedule.select`` sees to it).

A model whose eval forward leaves layers with weights unused (GoogLeNet's and Inception's auxiliary classifiers)
is traced again in training mode, on meta tensors, so those layers are sliced with the channels they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from compress.prune.attention import attention_spec
from compress.prune.channels import LayerUse, Trace
from compress.prune.trace import TRACED_MODULES, output_tensors, passes_channels, run_trace

__all__ = ["Group", "DependencyGraph", "build_graph"]


@dataclass
class Group:
    """Channels (union-find roots) made by the same layers. ``layers`` names them; ``width`` is the count."""

    layers: tuple[str, ...]
    channels: list[int]

    @property
    def width(self) -> int:
        return len(self.channels)

    @property
    def name(self) -> str:
        return self.layers[0] if len(self.layers) == 1 else f"{self.layers[0]} (+{len(self.layers) - 1} coupled)"


@dataclass(frozen=True)
class GroupTie:
    """Heads (``heads``, one channel per head) that go with ``embed`` by count: ``head_dim`` channels each."""

    heads: Group
    embed: Group
    head_dim: int


@dataclass
class DependencyGraph:
    """What :func:`build_graph` found: groups of prunable channels, the layer uses, and what was pinned."""

    model: nn.Module
    trace: Trace
    groups: list[Group]
    pinned_count: int
    unknown: dict[str, int] = field(default_factory=dict)
    root_index: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long), repr=False)
    """The channel (union-find root) of every node, by node."""
    ties: list[GroupTie] = field(default_factory=list)
    output_shapes: tuple[tuple[int, ...], ...] = ()   # every tensor the model returns, at the traced batch of 2

    @property
    def uses(self) -> list[LayerUse]:
        return self.trace.uses

    def root(self, node: int) -> int:
        return self.trace.find(node)

    def roots(self, nodes: list[int] | torch.Tensor) -> torch.Tensor:
        """The channel (union-find root) of each node, as a long tensor (for vectorized scoring and slicing)."""
        return self.root_index[torch.as_tensor(nodes, dtype=torch.long)]

    def describe(self) -> str:
        """One line per group, then what pinned channels (if anything but the input and output did)."""
        lines = [f"{len(self.groups)} prunable groups, {sum(g.width for g in self.groups)} channels; "
                 f"{self.pinned_count} channels pinned"]
        lines += [f"  {g.name}: {g.width}" for g in self.groups]
        if self.unknown:
            lines.append("pinned by: " + "; ".join(f"{k} x{v}" if v > 1 else k for k, v in self.unknown.items()))
        return "\n".join(lines)


def _example(input_shape, model: nn.Module) -> torch.Tensor:
    if isinstance(input_shape, torch.Tensor):
        return input_shape
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive ints like (1, 48, 48), got {input_shape!r}")
    p = next(iter(model.parameters()), None)
    # batch 2: a batch of one would make the batch dim ambiguous in reshapes
    return torch.randn((2, *shape), generator=torch.Generator().manual_seed(0),
                       dtype=p.dtype if p is not None and p.is_floating_point() else torch.float32,
                       ).to(p.device if p is not None else "cpu")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _weighted(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules()
            if next(m.parameters(recurse=False), None) is not None or next(m.buffers(recurse=False), None) is not None]


def build_graph(model: nn.Module, input_shape, *, ignored_layers: Sequence[str] = (),
                prune_embedding: bool = False, keep_whole: Sequence[str] = ()) -> DependencyGraph:
    """Trace ``model`` on a random input of ``input_shape`` (one example without the batch dim, e.g.
    ``(1, 48, 48)``, or an example batch tensor) and group its coupled channels.

    ``ignored_layers``: module paths whose channels stay (every channel a layer under that path makes, and the
    channels of norms and attention heads under it), as Torch-Pruning's ``ignored_layers``. ``prune_embedding``:
    a transformer's embedding width (the channels into its attention layers) is prunable, else pinned.
    ``keep_whole``: module paths inside which every channel any op or layer touches stays (what ``prune`` does with
    a module whose pruned forward fails).

    Raises TypeError for a non-module, ValueError when the forward fails on that shape (the message names it) or
    a path in ``ignored_layers`` is not a module of ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prune: model must be an nn.Module, got {type(model).__name__}")
    check_paths(model, ignored_layers, "ignored_layers")
    check_paths(model, keep_whole, "keep_whole")
    x = _example(input_shape, model)
    trace_with: dict[str, Any] = dict(on_meta=True, embedding=prune_embedding, keep_whole=keep_whole)
    try:
        trace, out, called = run_trace(model, x, **trace_with)
    except Exception:    # noqa: BLE001  a forward that needs real values (data-dependent code): run it for real
        trace = None
    if trace is None:
        trace_with["on_meta"] = False
        try:
            trace, out, called = run_trace(model, x, **trace_with)
        except Exception as exc:   # noqa: BLE001  the user's forward: any error is theirs, said in one line
            raise ValueError(f"the model's forward fails on input shape {tuple(x.shape[1:])}: "
                             f"{_first_line(exc)}") from None
    elif any(m not in called for m in _weighted(model)):
        try:      # layers the eval forward skips (auxiliary classifiers) run in training mode
            trained, _, called_train = run_trace(model, x, **trace_with, train=True)
            if len(called_train) > len(called):
                trace, called = trained, called_train
                trace_with["train"] = True
        except Exception:   # noqa: BLE001  the eval trace stands
            pass
    opaque = _not_reached(model, trace, called)
    if opaque:          # traced again, every channel the forwards around what was not reached see pinned
        try:
            again, _, _ = run_trace(model, x, **trace_with, opaque=opaque)
        except Exception as exc:   # noqa: BLE001  it ran a moment ago: a forward that changes between calls
            raise ValueError(f"the model's forward fails on input shape {tuple(x.shape[1:])} when traced again: "
                             f"{_first_line(exc)}") from None
        for what, n in trace.unknown.items():
            if "not run by the traced forward" in what or "never read by the traced forward" in what:
                again.unknown[what] = n
        trace = again
    _join_shared(model, trace)
    graph = _group(model, trace, ignored_layers, keep_whole)
    graph.output_shapes = tuple(tuple(t.shape) for t in output_tensors(out))
    return graph


def _not_reached(model: nn.Module, trace: Trace, called: set[nn.Module]) -> dict[str, str]:
    """What the traced forward never reached (a branch not taken, an auxiliary head at too small an input): layers
    that never ran and parameters or buffers no op read. They stay whole; they may read or make channels the
    trace cannot see, so the module whose own forward holds them (the nearest one that ran) is returned with why,
    for its channels to be pinned. Each is reported by name."""
    names = {m: n for n, m in model.named_modules()}
    parent = {f"{p}.{k}" if p else k: p for p, m in model.named_modules() for k in m._modules}
    handled = [u.name for u in trace.uses] + [h.name for h in trace.heads]
    # layers and attention modules run whole: their submodules and tensors are used inside, never by an op
    handled += [names[m] for m in called if isinstance(m, TRACED_MODULES) or attention_spec(m) is not None]
    aliases: dict[int, list[str]] = {}
    for path, t in (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)):
        aliases.setdefault(id(t), []).append(path)
    names_of = {n: m for m, n in names.items()}
    opaque: dict[str, str] = {}

    def around(path: str, what: str) -> None:
        owner = parent.get(path, "")
        while owner and names_of[owner] not in called:
            owner = parent.get(owner, "")
        why = f"{what} (not run by the traced forward: left whole, the channels {owner or 'the model'}'s " \
              "forward sees pinned)"
        trace.report(why)
        opaque.setdefault(owner, why)

    tops: dict[str, None] = {}
    for m in _weighted(model):
        n = names[m]
        if m in called or _under(n, handled):
            continue
        while parent.get(n, "") and names_of[parent[n]] not in called:
            n = parent[n]           # the outermost module that did not run
        tops.setdefault(n)
    for n in tops:
        around(n, f"{type(names_of[n]).__name__} ({n or 'model'})")
    for m, n in names.items():
        if m not in called or _under(n, handled):
            continue        # a layer's own tensors are read inside it
        for k, t in (*m._parameters.items(), *m._buffers.items()):
            if t is None or t.numel() <= 1:
                continue    # a scalar (a counter, a temperature) carries no channels
            if not any(p in trace.touched for p in aliases.get(id(t), [])):
                path = f"{n}.{k}" if n else k
                why = f"{path} (never read by the traced forward: left whole, the channels " \
                      f"{n or 'the model'}'s forward sees pinned)"
                trace.report(why)
                opaque.setdefault(n, why)
    return opaque


def _join_shared(model: nn.Module, trace: Trace) -> None:
    """Tied tensors (``c2.weight = c1.weight``) keep their tie: layers sharing their weight or bias are pruned
    together (their inputs joined, their outputs joined, so one slicing serves every name); a tensor shared in
    any other way (with a parameter used outside layers, a layer the trace did not reach, two roles) pins the
    channels of everything holding it. Surgery then gives every name the one sliced tensor."""
    slots: dict[int, list[tuple[str, str]]] = {}
    for path, t in (*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)):
        owner, _, attr = path.rpartition(".")
        slots.setdefault(id(t), []).append((owner, attr))
    uses = {u.name: u for u in trace.uses}
    for shared in (s for s in slots.values() if len(s) > 1):
        held = [uses[o] for o, _ in shared if o in uses]
        attrs = {a for _, a in shared}
        same = (len(held) == len(shared) and len(attrs) == 1 and attrs <= {"weight", "bias"}
                and len({type(u.module) for u in held}) == 1
                and len({len(u.in_ids) for u in held}) == 1 and len({len(u.out_ids) for u in held}) == 1)
        if same:
            for u in held[1:]:
                trace.union_all(held[0].out_ids, u.out_ids)
                if attrs == {"weight"}:
                    trace.union_all(held[0].in_ids, u.in_ids)
            continue
        names = ", ".join(f"{o}.{a}" if o else a for o, a in shared)
        why = f"{names} (one tensor shared: pruned whole)"
        trace.report(why)
        for u in held:
            trace.pin([*u.in_ids, *u.out_ids], why)
        for o, a in shared:
            use = trace.tensors.get(f"{o}.{a}" if o else a)
            if use is not None:
                trace.pin(use.ids, why)


def check_paths(model: nn.Module, paths: Iterable[str], what: str) -> None:
    """ValueError naming the first path that is not a module of ``model`` (with the closest ones)."""
    names = {n for n, _ in model.named_modules() if n}
    for p in paths:
        if not isinstance(p, str) or p not in names:
            import difflib

            close = difflib.get_close_matches(str(p), sorted(names), n=3)
            raise ValueError(f"{what}: {p!r} is not a layer of this model" +
                             (f"; did you mean {', '.join(close)}?" if close else ""))


def _under(name: str, paths: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in paths)


def _pin_ignored_and_misused(trace: Trace, ignored: Sequence[str], whole: Sequence[str] = ()) -> None:
    """Pin what ``ignored`` layers make or carry, and every channel of a tensor some op used unknowingly (a
    layer's weight used outside it would no longer fit once the layer is sliced)."""
    owner_of = {path: path.rpartition(".")[0] for path in trace.misused}
    for use in trace.uses:
        bad = next((why for p, why in trace.misused.items() if owner_of[p] == use.name), None)
        if bad is not None:
            trace.pin([*use.in_ids, *use.out_ids], bad)
        elif ignored and _under(use.name, ignored):
            trace.pin(use.out_ids, f"ignored_layers ({use.name})")
    layer_names = {use.name for use in trace.uses}
    for path, t in trace.tensors.items():
        owner = path.rpartition(".")[0]
        why = trace.misused.get(path)
        if why is None and owner in layer_names:
            why = f"{path} used outside its layer"
            trace.report(why)
        if why is None and ignored and _under(owner, ignored):
            why = f"ignored_layers ({path})"
        if why is None and whole and _under(owner, whole):
            why = f"kept whole ({path})"
        if why is not None:
            trace.pin(t.ids, why)
    for h in trace.heads:
        if ignored and _under(h.name, ignored):
            trace.pin(h.heads, f"ignored_layers ({h.name})")
        elif whole and _under(h.name, whole):
            trace.pin(h.heads, f"kept whole ({h.name})")
    for use in trace.uses if whole else ():
        if _under(use.name, whole):
            trace.pin([*use.in_ids, *use.out_ids], f"kept whole ({use.name})")


def _group(model: nn.Module, trace: Trace, ignored: Sequence[str] = (), whole: Sequence[str] = ()) -> DependencyGraph:
    _pin_ignored_and_misused(trace, ignored, whole)
    while True:
        root_index = trace.roots()
        pinned = torch.zeros(len(root_index), dtype=torch.bool)
        pinned[root_index[torch.tensor(sorted(trace.pinned), dtype=torch.long)]] = True
        groups = _makers_groups(trace, root_index, pinned)
        pinned_roots = set(pinned.nonzero().flatten().tolist())
        ties, broken = _ties(trace, root_index, pinned_roots, groups)
        if not broken:
            break
        for tie, why in broken:           # pin both sides, then group again
            trace.pin([*tie.heads, *tie.embed], why)
    return DependencyGraph(model, trace, groups, len(pinned_roots), dict(trace.unknown), root_index, ties)


def _makers_groups(trace: Trace, root_index: torch.Tensor, pinned: torch.Tensor) -> list[Group]:
    """Group the unpinned channels by the set of layers making them (norms and depthwise convs make none; a
    channel may sit at several positions of one layer's output, as a grouped conv coupled them). Vectorized: a
    channel's set of makers is summed as random 63-bit keys, one per layer, and channels grouped by that sum."""
    makers = [u for u in trace.uses if not passes_channels(u.module)]
    keys = torch.randint(0, 2 ** 62, (len(makers),), generator=torch.Generator().manual_seed(0))
    signature = torch.zeros(len(root_index), dtype=torch.long)
    made = torch.zeros(len(root_index), dtype=torch.bool)
    per_use = []
    for k, use in enumerate(makers):
        roots = root_index[use.out_index].unique()
        per_use.append(roots)
        signature.index_add_(0, roots, keys[k].expand(len(roots)))
        made[roots] = True
    channels = (made & ~pinned).nonzero().flatten()
    if not len(channels):
        return []
    sigs, which = signature[channels].unique(return_inverse=True)
    first = torch.full((len(sigs),), len(root_index), dtype=torch.long).scatter_reduce(0, which, channels, "amin")
    is_first = torch.zeros(len(root_index), dtype=torch.bool)
    is_first[first] = True
    names: dict[int, list[str]] = {}
    for use, roots in zip(makers, per_use):
        for r in roots[is_first[roots]].tolist():
            names.setdefault(r, []).append(use.name)
    order = torch.argsort(which * len(root_index) + channels)
    sizes = torch.bincount(which, minlength=len(sigs)).tolist()
    members = torch.split(channels[order], sizes)
    groups = [Group(tuple(sorted(set(names[int(f)]))), m.tolist()) for f, m in zip(first.tolist(), members)]
    return sorted(groups, key=lambda g: g.channels[0])


def _ties(trace: Trace, root_index: torch.Tensor, pinned_roots: set[int], groups: list[Group]):
    """Resolve each attention's tie to (heads group, embedding group); a tie that cannot hold is broken (pinned):
    the embedding spread over several groups, heads sharing a group with anything else, or two head sizes on one
    embedding."""
    group_of = {r: g for g in groups for r in g.channels}
    ties, broken = [], []
    head_dims: dict[int, int] = {}   # id of an embedding group -> the head size its ties use
    for tie in trace.ties:
        heads = set(root_index[torch.tensor(tie.heads, dtype=torch.long)].tolist())
        embed = set(root_index[torch.tensor(tie.embed, dtype=torch.long)].tolist())
        if heads & pinned_roots or embed & pinned_roots:
            if not (heads <= pinned_roots and embed <= pinned_roots):
                broken.append((tie, f"the heads of {tie.name} go only with its embedding width, which is pinned"))
            continue
        hg, eg = {id(group_of[r]) for r in heads}, {id(group_of[r]) for r in embed}
        if len(hg) != 1 or len(eg) != 1:
            broken.append((tie, f"the embedding width of {tie.name} is not one group"))
            continue
        h, e = group_of[next(iter(heads))], group_of[next(iter(embed))]
        if h.width != len(heads) or head_dims.setdefault(id(e), tie.head_dim) != tie.head_dim:
            broken.append((tie, f"the heads of {tie.name} cannot follow its embedding width"))
            continue
        ties.append(GroupTie(h, e, tie.head_dim))
    return ties, broken
