"""What a trace records: channel nodes joined in a union-find, and every place a channel reaches a weight.

A **node** is one channel of one tensor the forward made; nodes that must be removed together are joined (a
residual addition joins its two inputs' channels). A tensor's channel structure is a :class:`Chan`: along one dim,
position ``f`` is node ``ids[f]`` (a node may sit at several positions: after a flatten one channel is a block of
features, after a grouped convolution or a channel shuffle one channel sits in every group).

What a removed channel takes with it is recorded as uses: :class:`LayerUse` (a conv, linear or norm layer, or
``nn.MultiheadAttention``'s input projection, sliced whole), :class:`TensorUse` (a parameter or buffer used by an op
outside such a layer: a layer scale, a position embedding, a class token, a norm's weight used functionally),
:class:`HeadsUse` (an attention module whose heads are nodes: its head count and head-sized tensors follow),
:class:`AttrUse` (an int attribute a reshape reads, such as torchvision ViT's ``hidden_dim``) and :class:`Tie` (an
attention whose heads and embedding width must keep ``heads x head_dim == width``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Sequence

import torch
from torch import nn

__all__: list[str] = []   # internal: compress.prune.graph.build_graph runs the trace that fills them


@dataclass
class Chan:
    """The channel structure of one tensor: along ``dim``, position ``f`` belongs to channel node ``ids[f]``."""

    dim: int
    ids: list[int]


@dataclass
class LayerUse:
    """One layer with weights: the channel node of every input and output position."""

    name: str
    module: nn.Module
    in_ids: list[int]
    out_ids: list[int]

    @cached_property
    def in_index(self) -> torch.Tensor:
        return torch.tensor(self.in_ids, dtype=torch.long)

    @cached_property
    def out_index(self) -> torch.Tensor:
        return torch.tensor(self.out_ids, dtype=torch.long)


@dataclass
class TensorUse:
    """A parameter or buffer (``path``, as ``named_parameters`` / ``named_buffers`` name it) whose dim ``dim`` runs
    along channel nodes ``ids``; slicing it along that dim follows the channels."""

    path: str
    dim: int
    ids: list[int]


@dataclass
class HeadsUse:
    """An attention module (``name``) whose heads are nodes ``heads``: its head count attribute, its
    ``heads x head_dim`` attributes and its per-head tensors follow the heads kept."""

    name: str
    module: nn.Module
    spec: Any                 # compress.prune.attention.AttentionSpec
    heads: list[int]


@dataclass
class AttrUse:
    """An int attribute ``attr`` of module ``name`` that equals a channel count a reshape reads
    (``x.reshape(n, self.hidden_dim, -1)``), or element ``index`` of a tuple attribute a parameter is viewed to
    (timm's ``Scale``: ``self.scale.view(self.shape)``): after pruning it is the number of positions of ``ids``
    kept."""

    name: str
    module: nn.Module
    attr: str
    ids: list[int]
    index: int | None = None


@dataclass
class Tie:
    """An attention whose width is read from its input (``nn.MultiheadAttention``, Swin, MaxViT): its heads and its
    embedding channels go together by count, ``heads kept x head_dim == embedding channels kept``."""

    name: str
    heads: list[int]
    embed: list[int]
    head_dim: int


@dataclass
class Trace:
    parent: list[int] = field(default_factory=list)
    pinned: dict[int, str] = field(default_factory=dict)      # node -> why (first reason)
    uses: list[LayerUse] = field(default_factory=list)
    tensors: dict[str, TensorUse] = field(default_factory=dict)
    heads: list[HeadsUse] = field(default_factory=list)
    attrs: list[AttrUse] = field(default_factory=list)
    ties: list[Tie] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)    # "what (where)" -> times seen
    misused: dict[str, str] = field(default_factory=dict)    # tensor path -> the op that used it unknowingly
    touched: set[str] = field(default_factory=set)           # parameter / buffer paths an op outside layers read

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

    def union_all(self, a: Sequence[int], b: Sequence[int]) -> None:
        for x, y in zip(a, b):
            self.union(x, y)

    def roots(self) -> torch.Tensor:
        """The root of every node, by node (pointer jumping on the whole parent array at once)."""
        parent = torch.tensor(self.parent, dtype=torch.long)
        while True:
            up = parent[parent]
            if torch.equal(up, parent):
                return parent
            parent = up

    def pin(self, ids: Sequence[int], why: str) -> None:
        for i in ids:
            self.pinned.setdefault(i, why)

    def report(self, what: str) -> None:
        self.unknown[what] = self.unknown.get(what, 0) + 1
