"""Which channels go: per-layer or global selection, and the schedule of targets over ``steps``.

Selection (:func:`select`): per layer (``global_ranking=False``) each group keeps ``floor(width * (1 - ratio))``
channels, its highest-scored: Torch-Pruning's count (``int(width * (1 - ratio))``), so for the same ratio no layer
is ever wider than Torch-Pruning's. With one global ranking the scores are divided by their group's mean (so
layers of different sizes compare) and all but ``floor(total * (1 - ratio))`` channels go (Torch-Pruning's count
again). Then, per group, the kept width is rounded down to a multiple of ``round_to`` (as Torch-Pruning's
``round_to``) and raised to at least ``min_width`` (and at least ``round_to``, rounded up to a multiple of it),
never above the group's width. A family at width ``w`` whose every width is even halves (``ratio=0.5``) into
exactly its ``w / 2`` model; an odd width ``c`` keeps ``(c - 1) / 2`` where the builder makes ``(c + 1) / 2``.
``layer_ratios`` (module path -> ratio, Torch-Pruning's ``pruning_ratio_dict``) give the groups of the layers under
a path their own ratio (the most specific path per layer; the smallest ratio of a group's layers), outside any
global ranking. An attention whose heads are tied to its embedding width (``graph.ties``) keeps
``embedding kept // head_dim`` heads, and the embedding exactly that many heads' width.

Steps: step ``k`` asks for the cumulative ratio ``ratio * fraction_at(k)`` counted from each group's width before
the first step (``original``): a group keeps ``floor(original * (1 - ratio_k))``, never more than it has now, so a
step may remove no channel from a group and ``steps`` reach the same widths as one step (a ratio applied to each
step's widths would floor every step and remove at least one channel per group per step).

Schedules (:func:`fraction_at`): the share of the total reduction reached after step ``k`` of ``steps``:
``"linear"`` ``k / steps``; ``"agp"`` the cubic of Zhu & Gupta 2017 ("To prune, or not to prune"),
``1 - (1 - k / steps) ** 3``, which prunes most while the network is still large. Unstructured pruning
(:func:`agp_sparsity`, Deep Compression's gradual magnitude pruning) follows the same cubic.
"""

from __future__ import annotations

import math
from typing import Mapping

from compress.prune.graph import DependencyGraph

__all__ = ["SCHEDULES", "select", "group_ratio", "keep_width", "fraction_at", "step_ratio", "agp_sparsity"]

SCHEDULES = ("linear", "agp")


def fraction_at(k: int, steps: int, schedule: str) -> float:
    """Share (0..1) of the whole reduction done after step ``k`` (1-based) of ``steps``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    t = k / steps
    return t if schedule == "linear" else 1 - (1 - t) ** 3


def agp_sparsity(step: int, total_steps: int, final: float, *, initial: float = 0.0) -> float:
    """Automated gradual pruning (Zhu & Gupta 2017, eq. 1), ``s_t = s_f + (s_i - s_f) (1 - t / n)**3``: the
    ``"agp"`` schedule of :func:`fraction_at` from sparsity ``initial`` at step 0 to ``final`` at ``total_steps``
    and after."""
    if not 0 <= initial <= final < 1:
        raise ValueError(f"AGP: need 0 <= initial <= final < 1, got initial={initial}, final={final}")
    if total_steps <= 0:
        return final
    done = fraction_at(min(max(step, 0), total_steps), total_steps, "agp")
    return initial + (final - initial) * done


def step_ratio(ratio: float, k: int, steps: int, schedule: str) -> float:
    """The channel ratio step ``k`` applies to the model left by step ``k - 1`` so that after step ``k`` the
    cumulative ratio is ``ratio * fraction_at(k)``."""
    done_before = ratio * fraction_at(k - 1, steps, schedule)
    done_after = ratio * fraction_at(k, steps, schedule)
    return 1 - (1 - done_after) / (1 - done_before)


def keep_width(width: int, keep: int, round_to: int = 1, min_width: int = 1) -> int:
    """``keep`` rounded down to a multiple of ``round_to``, raised to at least ``min_width`` and ``round_to``
    (a multiple of ``round_to``), never above ``width``."""
    keep -= keep % round_to
    lowest = math.ceil(max(min_width, round_to) / round_to) * round_to
    return min(width, max(keep, lowest))


def _floor_keep(width: int, ratio: float) -> int:
    return int(width * (1 - ratio))     # Torch-Pruning's expression, float rounding included


def group_ratio(group, layer_ratios: Mapping[str, float] | None) -> float | None:
    """The ratio ``layer_ratios`` gives ``group``: for each of its layers the entry naming the layer or the nearest
    module above it; the smallest of those (the group keeps what its most protected layer asks); None if none
    does."""
    ratios = layer_ratios or {}
    found = []
    for layer in group.layers:
        matches = [p for p in ratios if layer == p or layer.startswith(p + ".")]
        if matches:
            found.append(ratios[max(matches, key=len)])
    return min(found) if found else None


def select(graph: DependencyGraph, scores: dict[int, float], ratio: float, *, global_ranking: bool = False,
           round_to: int = 1, min_width: int = 1, layer_ratios: Mapping[str, float] | None = None,
           original: Mapping[tuple[str, ...], int] | None = None) -> set[int]:
    """The channels (graph roots) to remove for a channel ``ratio`` in [0, 1). ``layer_ratios``: module path ->
    ratio for the groups of the layers under it (they stay out of a global ranking). An attention's heads tied to
    its embedding width keep ``embedding kept // head_dim`` heads (at least one), the embedding then exactly that
    many heads' width. ``original``: each group's width before the first step, by its ``layers`` (a group not in
    it: its current width); the ratios then count from those widths and a group keeps at most what it has now
    (the steps of :func:`compress.prune.prune`)."""
    own = {id(g): r for g in graph.groups if (r := group_ratio(g, layer_ratios)) is not None}
    start = {id(g): max(g.width, (original or {}).get(g.layers, g.width)) for g in graph.groups}
    keep = _global_keep([g for g in graph.groups if id(g) not in own], scores, ratio, min_width, start) \
        if global_ranking else {}
    counts = {}
    for g in graph.groups:
        n = keep[id(g)] if id(g) in keep else _floor_keep(start[id(g)], own.get(id(g), ratio))
        counts[id(g)] = keep_width(g.width, n, round_to, min_width)
    for tie in graph.ties:
        heads = max(1, min(tie.heads.width, counts[id(tie.embed)] // tie.head_dim))
        for other in graph.ties:      # every attention reading this embedding keeps as many heads
            if other.embed is tie.embed:
                heads = min(heads, other.heads.width)
        counts[id(tie.heads)] = heads
        counts[id(tie.embed)] = heads * tie.head_dim
    removed: set[int] = set()
    for g in graph.groups:
        ranked = sorted(g.channels, key=lambda r: (scores[r], r))
        removed.update(ranked[:g.width - counts[id(g)]])
    return removed


def _global_keep(groups: list, scores: dict[int, float], ratio: float, min_width: int,
                 start: Mapping[int, int]) -> dict[int, int]:
    """Per group, the channels kept by one ranking: all but ``floor(total * (1 - ratio))`` of the ``start``
    widths' total go, fewer when earlier steps already removed some."""
    entries = []
    for g in groups:
        mean = sum(scores[r] for r in g.channels) / g.width
        floor = min(min_width, g.width)
        ranked = sorted(g.channels, key=lambda r: (scores[r], r))
        # a group's last `floor` channels can never go: they are not candidates
        for r in ranked[:g.width - floor]:
            entries.append((scores[r] / mean if mean > 0 else 0.0, r, id(g)))
    total = sum(start[id(g)] for g in groups)
    gone = sum(g.width for g in groups) - _floor_keep(total, ratio)
    entries.sort()
    keep = {id(g): g.width for g in groups}
    for _, _, gid in entries[:max(0, min(len(entries), gone))]:
        keep[gid] -= 1
    return keep
