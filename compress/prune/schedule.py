"""Which channels go: per-layer or global selection, and the schedule of targets over ``steps``.

Selection (:func:`select`): per layer (``global_ranking=False``) each group keeps ``width * (1 - ratio)`` channels
rounded half up (the rounding of ``make_divisible`` with divisor 1, so halving a family is its half-width model),
its highest-scored; with one global ranking the scores are divided by their group's mean (so layers of
different sizes compare) and the lowest ``round(total * ratio)`` channels go. Either way a group keeps at least
``min_width`` channels and its kept width is rounded up to a multiple of ``round_to`` (never above its width).

Schedules (:func:`fraction_at`): the share of the total reduction reached after step ``k`` of ``steps``:
``"linear"`` ``k / steps``; ``"agp"`` the cubic of Zhu & Gupta 2017 ("To prune, or not to prune"),
``1 - (1 - k / steps) ** 3``, which prunes most while the network is still large.
"""

from __future__ import annotations

import math

from compress.prune.graph import DependencyGraph

__all__ = ["SCHEDULES", "select", "fraction_at", "step_ratio"]

SCHEDULES = ("linear", "agp")


def fraction_at(k: int, steps: int, schedule: str) -> float:
    """Share (0..1) of the whole reduction done after step ``k`` (1-based) of ``steps``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    t = k / steps
    return t if schedule == "linear" else 1 - (1 - t) ** 3


def step_ratio(ratio: float, k: int, steps: int, schedule: str) -> float:
    """The channel ratio step ``k`` applies to the model left by step ``k - 1`` so that after step ``k`` the
    cumulative ratio is ``ratio * fraction_at(k)``."""
    done_before = ratio * fraction_at(k - 1, steps, schedule)
    done_after = ratio * fraction_at(k, steps, schedule)
    return 1 - (1 - done_after) / (1 - done_before)


def _keep_width(width: int, keep: int, round_to: int, min_width: int) -> int:
    keep = max(keep, min(min_width, width))
    if round_to > 1:
        keep = max(round_to, math.ceil(keep / round_to) * round_to)
    return min(width, keep)


def select(graph: DependencyGraph, scores: dict[int, float], ratio: float, *, global_ranking: bool = False,
           round_to: int = 1, min_width: int = 1) -> set[int]:
    """The channels (graph roots) to remove for a channel ``ratio`` in [0, 1)."""
    if global_ranking:
        keep = _global_keep(graph, scores, ratio, min_width)
    else:
        keep = {id(g): int(g.width * (1 - ratio) + 0.5) for g in graph.groups}   # the builder's rounding
    removed: set[int] = set()
    for g in graph.groups:
        n = _keep_width(g.width, keep[id(g)], round_to, min_width)
        ranked = sorted(g.channels, key=lambda r: (scores[r], r))
        removed.update(ranked[:g.width - n])
    return removed


def _global_keep(graph: DependencyGraph, scores: dict[int, float], ratio: float, min_width: int) -> dict[int, int]:
    entries = []
    for g in graph.groups:
        mean = sum(scores[r] for r in g.channels) / g.width
        floor = min(min_width, g.width)
        ranked = sorted(g.channels, key=lambda r: (scores[r], r))
        # a group's last `floor` channels can never go: they are not candidates
        for r in ranked[:g.width - floor]:
            entries.append((scores[r] / mean if mean > 0 else 0.0, r, id(g)))
    total = sum(g.width for g in graph.groups)
    entries.sort()
    keep = {id(g): g.width for g in graph.groups}
    for _, _, gid in entries[:min(len(entries), int(total * ratio + 0.5))]:
        keep[gid] -= 1
    return keep
