"""The evidence a validation split gives: intervals, paired tests on the same images, and how small a difference
a split of ``n`` images can resolve. Every choice compress makes on a validation split reads it
(``export.choice.choose_artifact``, ``export.family.train_to_budget``, ``export.runs`` deciding on Deep
Compression, ``search.candidates.choose``).

Two candidates scored on the same ``n`` images differ only on the *discordant* images, the ones exactly one of
them gets right: A alone on ``b``, B alone on ``c``. Their accuracies differ by ``(b - c) / n``.

- **Interval of one accuracy**: Wilson's score interval (:func:`wilson`), the binomial interval that stays inside
  [0, 1] and keeps its coverage near 0% and 100%.
- **Is A better than B** (:func:`better`): McNemar's exact test, i.e. a two-sided sign test on the ``b + c``
  discordant images (:func:`sign_test`), at :data:`ALPHA` = 5%, with A ahead. Counts a fair coin reaches are
  ties: 4 images to 0 is not a difference (p = 0.125), 20 to 8 is (p = 0.036).
- **Better by more than T points** (``better(a, b, points=T)``): the lower end of the 95% interval of the paired
  difference (:func:`gap_interval`) is above T. The interval is exact and conditional on the discordant count:
  the Clopper-Pearson interval of A's share ``b / (b + c)`` of the discordant images, scaled to
  ``(b + c) / n * (2 * share - 1)``. At T = 0 it is McNemar's exact test above, to the image (the Clopper-Pearson
  bound passes 1/2 exactly when the exact two-sided p-value passes 5%).
- **Within T points** (:func:`within`): A is within T points of B unless B is better than A by more than T by
  the rule above. A shortfall the split cannot resolve is within any tolerance.

**What a split can resolve** (:func:`resolvable_points`, :func:`images_needed`). The fewest discordant images the
exact test at 5% can call is 6, all one way (two-sided p = 2 / 2**6 = 0.031; 5 to 0 gives 0.0625), and every
other split of the discordant images needs a larger difference (9 to 1, 10 to 2...). So a difference under
``6 / n`` -- ``600 / n`` percentage points -- never passes, and a tolerance T below that is not one the split can
resolve: a split needs at least ``600 / T`` images (1,200 for half a point; on 70 images a difference needs
8.6 points). This is a floor, not a guarantee: it assumes the two candidates disagree on nothing else, so a
split of that size is necessary to resolve T, and more is usually needed. :func:`warn_unresolvable` says so in
one warning of the category :class:`SplitTooSmallWarning` (the CLI prints it once on stderr).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ALPHA", "Z95", "MIN_DISCORDANT", "SplitTooSmallWarning", "Gap", "wilson", "correct", "sign_test",
           "paired_gap", "gap_interval", "better", "within", "first_unbeaten", "resolvable_points", "images_needed",
           "split_warning", "warn_unresolvable"]

ALPHA = 0.05   # two-sided level of the paired test: what separates a difference from a tie
Z95 = 1.96     # the normal quantile of a 95% interval


def _min_discordant(alpha: float) -> int:
    """The fewest discordant images, all one way, that the exact two-sided sign test calls at ``alpha``."""
    k = 1
    while 2 * 0.5 ** k >= alpha:
        k += 1
    return k


MIN_DISCORDANT = _min_discordant(ALPHA)   # 6 at 5%: the smallest difference a split can resolve, in images


class SplitTooSmallWarning(UserWarning):
    """The validation split cannot resolve the tolerance asked for (see :func:`split_warning`)."""


@dataclass(frozen=True)
class Gap:
    """The paired difference ``acc(a) - acc(b)`` on the same images, with its exact 95% interval (fractions)."""

    diff: float
    low: float
    high: float
    only_a: int      # images only a gets right
    only_b: int      # images only b gets right
    n: int

    def points(self) -> str:
        """``"+5.71 [-1.20, +12.60]"``: the difference and its interval in percentage points."""
        return f"{100 * self.diff:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}]"


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` (an accuracy, a fraction) observed on ``n`` trials, clipped to
    [0, 1]. Raises ValueError for ``n <= 0``."""
    if n <= 0:
        raise ValueError(f"wilson: n must be positive, got {n}")
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def correct(outputs: Any, labels: Any) -> np.ndarray:
    """Per-image correctness (a bool array): ``outputs`` are predicted labels (one per image) or logits (one row
    per image, the argmax is the prediction); ``labels`` the true ones. Raises ValueError when the counts differ."""
    out = np.asarray(outputs.detach().cpu() if hasattr(outputs, "detach") else outputs)
    y = np.asarray(labels.detach().cpu() if hasattr(labels, "detach") else labels)
    if out.ndim == 2:
        out = out.argmax(1)
    if out.shape != y.shape:
        raise ValueError(f"correct: {len(out)} predictions for {len(y)} labels")
    return out == y


def _pair(a: Any, b: Any) -> tuple[int, int, int]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError("both candidates must be scored on the same, non-empty image set")
    return int(np.sum(a & ~b)), int(np.sum(b & ~a)), len(a)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact p-value of ``wins`` against ``losses`` under a fair coin: McNemar's exact test on the
    discordant images."""
    n, k = wins + losses, max(wins, losses)
    if n == 0:
        return 1.0
    log_half = n * math.log(0.5)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
               for i in range(k, n + 1))
    return min(1.0, 2 * tail)


def paired_gap(a: Any, b: Any) -> tuple[float, float]:
    """``(acc(a) - acc(b), its standard error)`` on the same images, from the discordant images only (McNemar).
    Raises ValueError unless both are bool arrays of one non-empty length."""
    try:
        only_a, only_b, n = _pair(a, b)
    except ValueError as exc:
        raise ValueError(f"paired_gap: {exc}") from None
    return (only_a - only_b) / n, math.sqrt(only_a + only_b) / n


def _upper_tail(k: int, d: int, theta: float) -> float:
    """P(X >= k) for X ~ Binomial(d, theta)."""
    if k <= 0:
        return 1.0
    if k > d:
        return 0.0
    if theta <= 0.0:
        return 0.0
    if theta >= 1.0:
        return 1.0
    i = np.arange(k, d + 1)
    log_choose = np.array([math.lgamma(d + 1) - math.lgamma(j + 1) - math.lgamma(d - j + 1) for j in i])
    return float(np.exp(log_choose + i * math.log(theta) + (d - i) * math.log1p(-theta)).sum())


def _share_low(k: int, d: int, tail: float) -> float:
    """Clopper-Pearson lower bound of a binomial share with ``k`` of ``d`` (one-sided level ``tail``)."""
    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):   # P(X >= k; theta) grows with theta: bisect to 1e-18
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if _upper_tail(k, d, mid) > tail else (mid, hi)
    return lo


def gap_interval(a: Any, b: Any, *, alpha: float = ALPHA) -> Gap:
    """``acc(a) - acc(b)`` on the same images (bool arrays of per-image correctness) with its exact
    ``1 - alpha`` interval, conditional on the discordant count (module docstring). Raises ValueError unless both
    are scored on the same non-empty image set."""
    only_a, only_b, n = _pair(a, b)
    d = only_a + only_b
    low = d / n * (2 * _share_low(only_a, d, alpha / 2) - 1) if d else 0.0
    high = d / n * (1 - 2 * _share_low(only_b, d, alpha / 2)) if d else 0.0
    return Gap((only_a - only_b) / n, low, high, only_a, only_b, n)


def better(a: Any, b: Any, points: float = 0.0, *, alpha: float = ALPHA) -> bool:
    """Whether ``a`` is more accurate than ``b`` by more than ``points`` percentage points on the same images,
    beyond the noise of the split: at ``points`` 0, McNemar's exact test at ``alpha`` with ``a`` ahead; above 0,
    the lower end of the paired difference's interval (:func:`gap_interval`) above ``points``. A difference under
    ``MIN_DISCORDANT`` images never passes."""
    if not points >= 0 or not math.isfinite(points):
        raise ValueError(f"points must be a finite number >= 0, got {points!r}")
    only_a, only_b, _ = _pair(a, b)
    if only_a <= only_b or sign_test(only_a, only_b) >= alpha:
        return False
    return points == 0 or gap_interval(a, b, alpha=alpha).low > points / 100


def within(a: Any, b: Any, points: float = 0.0, *, alpha: float = ALPHA) -> bool:
    """Whether ``a`` is within ``points`` percentage points of ``b``: ``b`` is not :func:`better` than ``a`` by
    more than that. A shortfall of a few images is within any tolerance."""
    return not better(b, a, points, alpha=alpha)


def first_unbeaten(corrects: Any, points: float = 0.0, *, alpha: float = ALPHA) -> int:
    """The index of the first of ``corrects`` (per-image correctness of candidates in order of preference, all
    on the same images) that no other one is :func:`better` than by more than ``points``. One always exists:
    the most accurate is beaten by none. Raises ValueError for an empty list."""
    corrects = [np.asarray(c, dtype=bool) for c in corrects]
    if not corrects:
        raise ValueError("first_unbeaten: no candidates")
    for i, c in enumerate(corrects):
        if not any(better(o, c, points, alpha=alpha) for j, o in enumerate(corrects) if j != i):
            return i
    raise AssertionError("the most accurate candidate is beaten by none")  # pragma: no cover


def resolvable_points(n: int, *, alpha: float = ALPHA) -> float:
    """The smallest difference (percentage points) a split of ``n`` images can call at ``alpha``:
    ``100 * MIN_DISCORDANT / n`` (600 / n at 5%; module docstring). Raises ValueError for ``n <= 0``."""
    if n <= 0:
        raise ValueError(f"resolvable_points: n must be positive, got {n}")
    return 100 * _min_discordant(alpha) / n


def images_needed(tolerance_points: float, *, alpha: float = ALPHA) -> int:
    """The fewest images a split needs before a difference of ``tolerance_points`` can pass the paired test:
    ``ceil(100 * MIN_DISCORDANT / tolerance_points)`` (1,200 for 0.5 points at 5%). A floor: more are usually
    needed. Raises ValueError for a tolerance that is not positive."""
    if not tolerance_points > 0 or not math.isfinite(tolerance_points):
        raise ValueError(f"images_needed: tolerance_points must be positive, got {tolerance_points!r}")
    return math.ceil(100 * _min_discordant(alpha) / tolerance_points - 1e-9)


def split_warning(n: int, tolerance_points: float, *, what: str = "validation split", alpha: float = ALPHA
                  ) -> str | None:
    """The one line saying that ``n`` images cannot resolve ``tolerance_points`` (None when they can, or when the
    tolerance is 0: nothing is asked of the split then)."""
    if not tolerance_points > 0 or resolvable_points(n, alpha=alpha) <= tolerance_points:
        return None
    return (f"{what} of {n:,} images cannot resolve a {tolerance_points:g}-point tolerance (a difference needs "
            f">= {resolvable_points(n, alpha=alpha):.1f} points here; about "
            f"{images_needed(tolerance_points, alpha=alpha):,} images would resolve {tolerance_points:g})")


def warn_unresolvable(n: int, tolerance_points: float, *, what: str = "validation split", stacklevel: int = 3
                      ) -> str | None:
    """Warn (:class:`SplitTooSmallWarning`) with :func:`split_warning`'s line when there is one; returns it."""
    line = split_warning(n, tolerance_points, what=what)
    if line is not None:
        warnings.warn(line, SplitTooSmallWarning, stacklevel=stacklevel)
    return line
