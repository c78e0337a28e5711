"""The dependency graph: coupled channels grouped by the layers that make them.

:func:`build_graph` traces one forward (:mod:`compress.prune.trace`) and returns a :class:`DependencyGraph`:

* a **channel** is one set of coupled channel nodes (removing it removes one channel from every tensor, weight
  and norm it reaches);
* a **group** is the channels made by the same set of layers (all output channels of ``features.0.conv`` and
  its BatchNorm; every channel of one residual chain; the half of a concatenation one branch makes; position
  ``j`` of every group of a grouped conv's output is one channel): per-layer ratios act on a group, ``round_to``
  and ``min_width`` hold per group;
* **pinned** channels (the input's, the classifier's outputs, anything an unknown op touches) are in no group,
  and ``graph.unknown`` names what pinned them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from compress.prune.trace import CONV, LayerUse, Trace, is_depthwise, run_trace

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


def build_graph(model: nn.Module, input_shape) -> DependencyGraph:
    """Trace ``model`` on a random input of ``input_shape`` (one example without the batch dim, e.g.
    ``(1, 48, 48)``, or an example batch tensor) and group its coupled channels.

    Raises TypeError for a non-module, ValueError when the forward fails on that shape (the message names it).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prune: model must be an nn.Module, got {type(model).__name__}")
    x = _example(input_shape, model)
    try:
        trace, _ = run_trace(model, x, on_meta=True)     # shapes only: fast, and the weights are never read
    except Exception:    # noqa: BLE001  a forward that needs real values (data-dependent code): run it for real
        trace = None
    try:
        if trace is None:
            trace, _ = run_trace(model, x, on_meta=False)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"the model's forward fails on input shape {tuple(x.shape[1:])}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return _group(model, trace)


def _group(model: nn.Module, trace: Trace) -> DependencyGraph:
    root_of = [trace.find(i) for i in range(len(trace.parent))]
    pinned_roots = {root_of[i] for i in trace.pinned}
    makers: dict[int, set[str]] = {}
    for use in trace.uses:
        if _is_norm(use.module) or is_depthwise(use.module):
            continue                         # they pass their input's channels on: they make none
        # a channel may sit at several positions of one layer's output (the positions a grouped conv coupled
        # across its groups): surgery removes every position whose channel goes, in every tensor alike
        for i in use.out_ids:
            makers.setdefault(root_of[i], set()).add(use.name)
    groups: dict[tuple[str, ...], list[int]] = {}
    for root, names in makers.items():
        if root not in pinned_roots:
            groups.setdefault(tuple(sorted(names)), []).append(root)
    ordered = sorted(groups.items(), key=lambda kv: min(kv[1]))
    pinned = sum(1 for r in set(root_of) if r in pinned_roots)
    return DependencyGraph(model, trace, [Group(k, sorted(v)) for k, v in ordered], pinned, dict(trace.unknown),
                           torch.tensor(root_of, dtype=torch.long))


def _is_norm(module: nn.Module) -> bool:
    return not isinstance(module, CONV) and not isinstance(module, nn.Linear)
