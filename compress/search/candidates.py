"""A search's candidates: one record per artifact, the Pareto front, and the rule that picks the winner.

Every number says where it was measured. ``val_*`` is the validation split: the only split a choice reads.
``test_acc`` is the held-out test split, reported beside it and never used to choose (a search that chose on the
test split would report an optimistic number for its winner).

The rule (:func:`choose`): among the candidates within every limit, the one with the highest validation accuracy
leads. Another candidate is *tied* with it when it is (1) at most ``tolerance_points`` percentage points less
accurate (default :data:`TOLERANCE_POINTS`, 0: only an equal accuracy ties) and (2) not worse by McNemar's exact
test on the same validation images at the 5% level (:func:`compress.evidence.better`, where the paired rule every
choice on a validation split uses is documented): of the ``b + c`` images exactly one of the two gets right, the
leader's ``b`` must be a count a fair coin reaches with two-sided probability under 0.05 (4 images to 0 is not
enough, p = 0.125; 20 to 8 is, p = 0.036). Among the tied candidates the fastest wins (measured latency), then the
smallest file. Latencies within :data:`LATENCY_TIE` (10%) of the fastest count as equally fast (timings on a shared
CPU move by that much between runs), and the smallest file among them wins. So a search never trades more than the
tolerance for speed, and never a difference the split can resolve. The default tolerance is 0 because a
validation split of a few hundred images cannot vouch for a trade: on the 400 digits of the default data, half a
point given up on validation was 3.3 points on the test split (``benchmarks/README.md``, "Joint search"). A
tolerance the split cannot resolve (under ``600 / n`` points on ``n`` images:
:func:`compress.evidence.resolvable_points`) is warned about once by the search
(:class:`compress.evidence.SplitTooSmallWarning`).
"""

from __future__ import annotations

import base64
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Sequence

import numpy as np

from compress.evidence import ALPHA, better, paired_gap, sign_test, wilson

__all__ = ["Candidate", "METHODS", "wilson", "paired_gap", "sign_test", "pareto_front", "choose", "nearest",
           "COLUMNS", "ALPHA", "TOLERANCE_POINTS"]

# what a candidate is, in the report's words; the order is the plot legend's
METHODS = {
    "dense": "dense baseline (fp32)",
    "joint": "search: pruning + distillation + codec",
    "codec": "codec only",
    "deep": "Deep Compression only",
    "prune": "pruning only (no distillation, fp32)",
    "scaled": "scaled to the budget, trained from scratch",
    "random": "random-importance pruning (control)",
}
LATENCY_TIE = 1.10  # latencies within 10% of the fastest are equally fast
TOLERANCE_POINTS = 0.0   # accuracy (percentage points) a search may give up for a faster or smaller model


@dataclass
class Candidate:
    """One artifact the search wrote and measured."""

    id: str                          # MODEL~CODEC
    model: str                       # the trained model it stores (a task id, or "dense")
    codec: str                       # the storage: a codec name, or "deep" (a per-layer plan)
    method: str                      # a METHODS key
    parent: str | None = None        # the model it was made from (warm start)
    size_bytes: int | None = None    # os.path.getsize of the artifact
    param_count: int | None = None   # of the model the artifact reloads to
    macs: int | None = None          # of the same, one image
    val_acc: float | None = None     # validation split, the artifact as reloaded from disk
    val_low: float | None = None     # Wilson 95% interval of val_acc (compress.evidence.wilson)
    val_high: float | None = None
    val_n: int = 0
    test_acc: float | None = None    # test split (reported only, never used to choose)
    test_n: int = 0
    latency_ms: float | None = None  # median ms on `runtime` (the fastest whose outputs passed the check)
    runtime: str | None = None
    latencies: dict = field(default_factory=dict)   # runtime -> median ms, or the reason it has none
    fits_bytes: bool = False
    fits_latency: bool | None = None  # None: no latency limit
    fits: bool = False
    front: bool = False              # on the Pareto front (bytes, latency, val accuracy)
    chosen: bool = False
    seconds: float = 0.0             # writing and scoring it (its model's training is the model's)
    error: str | None = None         # why it has no numbers (a codec refusing the weights, a failed task)
    artifact: str | None = None      # path under the search folder
    val_correct: str | None = None   # which validation images it got right (packed bits, base64): paired tests

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"candidate record has unknown fields {unknown}")
        return cls(**d)

    def row(self) -> dict[str, Any]:
        """A flat row for candidates.csv (latencies as runtime=ms pairs; no correctness bits)."""
        d = self.to_dict()
        d.pop("val_correct")
        d["latencies"] = " ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}=failed"
                                  for k, v in self.latencies.items())
        return d

    def correct(self) -> np.ndarray | None:
        if self.val_correct is None:
            return None
        bits = np.frombuffer(base64.b64decode(self.val_correct), dtype=np.uint8)
        return np.unpackbits(bits)[: self.val_n].astype(bool)

    def set_correct(self, correct: np.ndarray) -> None:
        self.val_correct = base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode()


COLUMNS = [f.name for f in fields(Candidate) if f.name != "val_correct"]


def worse(a: Candidate, best: Candidate) -> bool:
    """Whether ``a`` is worse than ``best`` beyond the noise of the validation split: :func:`compress.evidence.better`
    on their per-image correctness (McNemar's exact test at 5%); without it, non-overlapping Wilson intervals."""
    ca, cb = a.correct(), best.correct()
    if ca is None or cb is None or ca.shape != cb.shape:    # no paired data: the two Wilson intervals
        return a.val_high is not None and best.val_low is not None and a.val_high < best.val_low
    return better(cb, ca, alpha=ALPHA)


def _val_acc(r: Candidate) -> float:
    """The validation accuracy of a candidate the caller kept for having one."""
    assert r.val_acc is not None
    return r.val_acc


def pareto_front(rows: Iterable[Candidate], axes: Sequence[str] = ("size_bytes", "latency_ms")) -> list[Candidate]:
    """The candidates no other one beats: none has every one of ``axes`` at most as large and a validation
    accuracy at least as high, with one of them strictly better. Candidates missing a quantity are left out."""
    pts = [r for r in rows if r.val_acc is not None and all(getattr(r, a) is not None for a in axes)]

    def dominates(p: Candidate, q: Candidate) -> bool:
        le = all(getattr(p, a) <= getattr(q, a) for a in axes) and _val_acc(p) >= _val_acc(q)
        lt = any(getattr(p, a) < getattr(q, a) for a in axes) or _val_acc(p) > _val_acc(q)
        return le and lt

    return [q for q in pts if not any(dominates(p, q) for p in pts if p is not q)]


def choose(rows: Sequence[Candidate], tolerance_points: float = TOLERANCE_POINTS
           ) -> tuple[Candidate | None, list[Candidate]]:
    """``(winner, tied)``: the module's rule over the candidates that fit; ``(None, [])`` when none fits."""
    fitting = [r for r in rows if r.fits and r.val_acc is not None]
    if not fitting:
        return None, []
    best = max(fitting, key=_val_acc)
    tied = [r for r in fitting
            if 100 * (_val_acc(best) - _val_acc(r)) <= tolerance_points + 1e-9 and not worse(r, best)]
    inf = math.inf
    timed = [r.latency_ms for r in tied if r.latency_ms is not None]
    fast = [r for r in tied if r.latency_ms is not None and r.latency_ms <= LATENCY_TIE * min(timed)] if timed \
        else tied
    winner = min(fast, key=lambda r: (r.size_bytes or inf, r.latency_ms if r.latency_ms is not None else inf,
                                      -_val_acc(r)))
    return winner, tied


def nearest(rows: Sequence[Candidate], max_bytes: int, max_latency_ms: float | None, k: int = 5) -> list[Candidate]:
    """The ``k`` candidates closest to the budget (largest overshoot ratio, smallest first): what a budget that no
    candidate meets reports."""
    def over(r: Candidate) -> float:
        ratio = r.size_bytes / max_bytes if r.size_bytes else math.inf
        if max_latency_ms is not None:
            ratio = max(ratio, r.latency_ms / max_latency_ms if r.latency_ms is not None else math.inf)
        return ratio
    scored = [r for r in rows if r.size_bytes is not None]
    return sorted(scored, key=lambda r: (over(r), -(r.val_acc or 0)))[:k]
