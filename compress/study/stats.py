"""Means with confidence intervals over seeds, and the tie rule the reports use.

A 95% interval over n seeds is ``mean +- t(0.975, n-1) * s / sqrt(n)`` (Student's t, s the sample standard
deviation). With one seed there is no spread to estimate; :func:`mean_ci` then falls back to the binomial
(Wilson, :func:`compress.evidence.wilson`) interval of that one accuracy on ``n_eval`` images, when given.

The tie rule (:func:`verdict`): one result beats another only when (1) their 95% intervals do not overlap and
(2) their means differ by at least :data:`MIN_DIFFERENCE`, one accuracy point. (1) is the noise of training (the
seeds); (2) stands for the noise it leaves out: every seed is scored on the same test images, so the interval
over seeds says nothing about how the accuracy would move on another test set of the same size, and the
binomial standard error of an accuracy on 1,000 images is 0.5 to 0.7 points between 97% and 95% (0.95 at 90%;
REFERENCES: a 3,589-image test at 66% has ~0.8). A gap under one point is inside that noise and is called a
tie however narrow the seed intervals are; it is also where a change of CPU kernels moved verdicts
(``benchmarks/README.md``, "Verdicts under other kernels").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from compress.evidence import wilson   # the one Wilson interval; re-exported here for the reports

# Student's t quantiles t(0.975, df) for df = 1..30; beyond 30 the normal 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


__all__ = ["MIN_DIFFERENCE", "t_quantile_975", "Interval", "wilson", "mean_ci", "verdict"]

MIN_DIFFERENCE = 0.01   # accuracy (fraction): the smallest gap between two means that can be a win


def t_quantile_975(df: int) -> float:
    """Two-sided 95% Student's t quantile for ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else 1.96


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    std: float          # sample standard deviation over seeds (0 for one seed)
    method: str         # "t" (over seeds), "wilson" (one seed, binomial) or "none"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "std": self.std,
                "method": self.method}


def mean_ci(values: Sequence[float], *, n_eval: int | None = None,
            bounds: tuple[float, float] | None = None) -> Interval:
    """Mean and 95% interval of ``values`` (one per seed), clipped to ``bounds`` (``(0, 1)`` for accuracies).
    Raises ValueError on an empty or non-finite input."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_ci: no values")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"mean_ci: non-finite value in {vals}")
    n = len(vals)
    mean = sum(vals) / n
    if n == 1:
        if n_eval:
            low, high = wilson(mean, n_eval)
            return Interval(mean, low, high, 1, 0.0, "wilson")
        return Interval(mean, mean, mean, 1, 0.0, "none")
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(mean, low, high, n, std, "t")


def verdict(a: Interval, b: Interval, *, min_difference: float = MIN_DIFFERENCE) -> str:
    """``"a"``, ``"b"`` or ``"tie"``: a winner only when the 95% intervals do not overlap and the means differ
    by at least ``min_difference`` (accuracy, fraction; the module docstring says why). Raises ValueError on a
    negative or non-finite ``min_difference``."""
    if not (isinstance(min_difference, (int, float)) and math.isfinite(min_difference) and min_difference >= 0):
        raise ValueError(f"verdict: min_difference must be a finite accuracy gap >= 0, got {min_difference!r}")
    if a.overlaps(b) or abs(a.mean - b.mean) < min_difference:
        return "tie"
    return "a" if a.mean > b.mean else "b"
