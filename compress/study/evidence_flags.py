"""Weak evidence in a sweep's results, flagged in one line per kind for the report's summary
(:func:`weak_evidence`): points with fewer than :data:`MIN_SEEDS` seeds, zero-width intervals, points where most
runs did not converge, and verdicts at the edge of the tie rule (:func:`compress.study.stats.verdict`), where a
move of :data:`EDGE_POINTS` in the gap between the means or between the intervals would change the verdict."""

from __future__ import annotations

from typing import NamedTuple

from compress.study.stats import MIN_DIFFERENCE, Interval

__all__ = ["MIN_SEEDS", "EDGE_POINTS", "Compared", "weak_evidence", "at_edge", "point_label"]

MIN_SEEDS = 3          # below this a 95% interval over seeds is too wide (t = 12.7 for 2) or none at all
EDGE_POINTS = 0.25     # accuracy points: how near the rule's two limits a verdict is "at the edge"


class Compared(NamedTuple):
    """One verdict the report makes: what was compared, the two intervals, the verdict ("a", "b" or "tie")."""

    label: str
    a: Interval
    b: Interval
    verdict: str


def point_label(row: dict) -> str:
    """``family budget policy[ variant]`` of a summary row."""
    variant = "" if row["variant"] == "full" else f" {row['variant']}"
    return f"{row['family']} {row['budget']:,} {row.get('policy', 'width')}{variant}"


def separation(a: Interval, b: Interval) -> float:
    """The gap between two intervals (accuracy, fraction): positive when they do not overlap; negative when they
    do, by how far one would have to move to clear the other."""
    return max(a.low - b.high, b.low - a.high)


def at_edge(c: Compared, *, edge: float = EDGE_POINTS / 100, min_difference: float = MIN_DIFFERENCE) -> bool:
    """Whether moving the means' gap or the intervals' separation by ``edge`` (fraction) would change ``c``'s
    verdict: a win whose intervals are less than ``edge`` apart or whose gap is less than ``edge`` over the
    minimum, or a tie that is within ``edge`` of both conditions of a win."""
    gap, sep = abs(c.a.mean - c.b.mean), separation(c.a, c.b)
    if c.verdict != "tie":
        return sep <= edge or gap - min_difference < edge
    return sep > -edge and gap > min_difference - edge


def weak_evidence(rows: list[dict], compared: list[Compared]) -> list[str]:
    """The report's weak-evidence lines (Markdown list items, none when nothing is weak): one per kind, naming
    each point or verdict. ``rows``: ``results.summarize`` rows; ``compared``: every verdict the report makes."""
    lines = []
    few = [r for r in rows if r["n"] < MIN_SEEDS]
    if few:
        lines.append(f"- **fewer than {MIN_SEEDS} seeds** (an interval over 2 seeds is 12.7 standard errors wide, "
                     "over 1 it is the test set's binomial interval only): "
                     + ", ".join(f"{point_label(r)} ({r['n']})" for r in few))
    zero = [r for r in rows if any(r.get(k) and r[k]["high"] - r[k]["low"] <= 0 for k in ("val_acc", "test_acc"))]
    if zero:
        lines.append("- **zero-width intervals** (every seed scored the same, or one seed with no test size: "
                     "no spread measured, not certainty): " + ", ".join(point_label(r) for r in zero))
    stuck = [r for r in rows if 2 * r.get("unconverged", 0) > r["n"]]
    if stuck:
        lines.append("- **most runs did not converge** (still gaining when training stopped: the accuracy is "
                     "the cap's, not the model's): "
                     + ", ".join(f"{point_label(r)} ({r['unconverged']} of {r['n']})" for r in stuck))
    edge = [c for c in compared if at_edge(c)]
    if edge:
        lines.append(f"- **verdicts at the edge of the rule** (within {EDGE_POINTS:g} points of the "
                     f"{100 * MIN_DIFFERENCE:g}-point minimum or of the intervals' (non-)overlap; another set of "
                     "seeds could change them): " + "; ".join(_edge_text(c) for c in edge))
    return lines


def _edge_text(c: Compared) -> str:
    sep = separation(c.a, c.b)
    where = f"{100 * sep:.2f} points apart" if sep > 0 else f"overlapping by {-100 * sep:.2f} points"
    return f"{c.label}: {c.verdict}, {100 * (c.a.mean - c.b.mean) + 0.0:+.2f} points, intervals {where}"
