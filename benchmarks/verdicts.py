"""Every verdict of two sweeps side by side: do they agree? (a check of machine independence).

    python benchmarks/verdicts.py sweeps/default sweeps/avx2 [--min-difference 0.01]

For each pair of families at each budget (each family at its best policy in the first sweep), each policy against
the family's best policy, and each ablation variant against its baseline: both sweeps' means and intervals, the
verdict of each under `compress.study.stats.verdict` with the given minimum difference, and whether they agree.
Also prints how many verdicts differ under the plain overlap rule (minimum difference 0). Reads results.json only.
"""

from __future__ import annotations

import argparse
import itertools

from compress.study.results import best_policies, load_results, summarize
from compress.study.stats import MIN_DIFFERENCE, Interval, verdict


def _iv(acc: dict) -> Interval:
    return Interval(acc["mean"], acc["low"], acc["high"], acc["n"], acc["std"], acc["method"])


def _pairs(rows: list[dict], best: dict[str, str]) -> dict[str, tuple]:
    """name -> (a, b) rows of every comparison the report makes."""
    full = {(r["family"], r["budget"], r["policy"], r["variant"]): r for r in rows}
    families = sorted({r["family"] for r in rows if r["variant"] == "full"})
    budgets = sorted({r["budget"] for r in rows})
    out = {}
    for a, b in itertools.combinations(families, 2):
        for x in budgets:
            ra, rb = full.get((a, x, best[a], "full")), full.get((b, x, best[b], "full"))
            if ra and rb:
                out[f"{a} vs {b} at {x:,}"] = (ra, rb)
    for (f, x, p, v), r in sorted(full.items()):
        ref = full.get((f, x, best[f], "full"))
        if v == "full" and p != best[f] and ref:
            out[f"{f} {p} vs {best[f]} at {x:,}"] = (r, ref)
        elif v != "full" and (f, x, p, "full") in full:
            out[f"{f} {v} vs full at {x:,}"] = (r, full[(f, x, p, "full")])
    return out


def _word(v: str) -> str:
    return {"a": "first", "b": "second", "tie": "tie"}[v]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first")
    ap.add_argument("second")
    ap.add_argument("--min-difference", type=float, default=MIN_DIFFERENCE, help="accuracy fraction")
    args = ap.parse_args()
    rows = [summarize(load_results(p)) for p in (args.first, args.second)]
    best = best_policies(rows[0])
    print(f"best policies ({args.first}): {best}; second sweep's own: {best_policies(rows[1])}")
    pairs = [_pairs(r, best) for r in rows]
    differ = {0.0: 0, args.min_difference: 0}
    print("| comparison | first sweep (a / b) | verdict | second sweep (a / b) | verdict | same |")
    print("|---|---|---|---|---|---|")
    for name, (a1, b1) in pairs[0].items():
        if name not in pairs[1]:
            continue
        a2, b2 = pairs[1][name]
        for md in differ:
            v = [verdict(_iv(a["acc"]), _iv(b["acc"]), min_difference=md) for a, b in ((a1, b1), (a2, b2))]
            differ[md] += v[0] != v[1]
        v1 = verdict(_iv(a1["acc"]), _iv(b1["acc"]), min_difference=args.min_difference)
        v2 = verdict(_iv(a2["acc"]), _iv(b2["acc"]), min_difference=args.min_difference)
        cell = lambda a, b: (f"{100 * a['acc']['mean']:.1f} ±{100 * (a['acc']['high'] - a['acc']['low']) / 2:.1f} / "  # noqa: E731
                             f"{100 * b['acc']['mean']:.1f} ±{100 * (b['acc']['high'] - b['acc']['low']) / 2:.1f}")
        print(f"| {name} | {cell(a1, b1)} | {_word(v1)} | {cell(a2, b2)} | {_word(v2)} | "
              f"{'yes' if v1 == v2 else '**no**'} |")
    for md, n in differ.items():
        print(f"verdicts that differ with min_difference={md:g}: {n} of {len(pairs[0])}")


if __name__ == "__main__":
    main()
