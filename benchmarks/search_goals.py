"""Joint search goals (issue 24): run ``compress.search`` on a trained run and check the goals on its own results.

    python benchmarks/search_goals.py RUN --max-bytes 225000 --out /tmp/search/mbv1 [--time-budget 30m]
    python benchmarks/search_goals.py RUN --ratio 40 --out /tmp/search/lenet300     # bytes = dense fp32 file / 40

Everything compared comes from the one search: the dense model's fp32 file and its latency (fastest checked
runtime, batch 1, one thread) are measured beside the candidates. Prints the search's table, then one line per
goal: the winner's bytes and test accuracy against the dense model's (and one binomial standard error of the
dense test accuracy), the fastest front point within 1 test point of the dense model and its speed-up, whether any
single-method result lies above the front by more than its interval, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def dense_fp32_bytes(run) -> int:
    """Bytes of the dense model's fp32 artifact, written as the search writes it."""
    from compress.export.artifact import serialize
    from compress.export.runs import run_meta

    return len(serialize(run.model, codec="fp32", meta=run_meta(run), input_shape=tuple(run.card.input_shape),
                         normalizer=run.normalizer, class_names=list(run.class_names)))


def main(argv=None) -> int:
    from compress.budget import Budget
    from compress.search import SearchBudgetError, SearchConfig, search
    from compress.train import load_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--max-bytes", type=int)
    g.add_argument("--ratio", type=float, help="budget = the dense fp32 artifact's bytes / RATIO")
    p.add_argument("--out", required=True)
    p.add_argument("--time-budget", default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads while training")
    p.add_argument("--json", default=None, help="append the goal row to this JSON-lines file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a SearchConfig setting, e.g. --set deep_prune_epochs=20 (value read as JSON)")
    args = p.parse_args(argv)
    src = load_run(args.run)
    max_bytes = args.max_bytes or int(math.floor(dense_fp32_bytes(src) / args.ratio))
    t0 = time.perf_counter()
    log = lambda line: print(f"[{time.perf_counter() - t0:7.1f}s] {line}", file=sys.stderr, flush=True)  # noqa: E731
    settings = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.set)}
    try:
        result = search(args.run, Budget(max_bytes=max_bytes), SearchConfig(
            time_budget_s=args.time_budget, threads=args.threads, **settings), out=args.out, log=log)
    except SearchBudgetError as exc:
        print(str(exc))
        return 2
    wall = time.perf_counter() - t0
    print(result.table())
    dense, best = result.dense, result.best
    n = dense.test_n
    se = math.sqrt(dense.test_acc * (1 - dense.test_acc) / n)
    front = [c for c in result.candidates if c.front and c.fits and c.test_acc is not None]
    close = [c for c in front if c.latency_ms is not None and dense.test_acc - c.test_acc <= 0.01]
    fastest = min(close, key=lambda c: c.latency_ms) if close else None
    above = []
    for c in result.candidates:     # a single-method result above the joint front by more than its interval,
        # at equal bytes: against the search's own candidates at most 5% larger (file sizes of one model's codecs
        # differ by a few hundred bytes between structures)
        if c.method in ("codec", "deep", "prune", "scaled", "random") and c.fits and c.val_low is not None:
            at_most = [f for f in result.candidates if f.method == "joint" and f.fits and f.val_acc is not None
                       and f.size_bytes <= 1.05 * c.size_bytes]
            best_joint = max((f.val_acc for f in at_most), default=None)
            if best_joint is None or c.val_low > best_joint:
                above.append(c.id)
    row = {"run": args.run, "settings": settings, "param_count": dense.param_count, "max_bytes": max_bytes,
           "dense_bytes": dense.size_bytes, "best": best.id, "best_bytes": best.size_bytes,
           "ratio": dense.size_bytes / best.size_bytes, "dense_test_acc": dense.test_acc,
           "best_test_acc": best.test_acc, "delta_points": 100 * (best.test_acc - dense.test_acc),
           "dense_test_se_points": 100 * se, "dense_latency_ms": dense.latency_ms, "dense_runtime": dense.runtime,
           "fastest_close": fastest.id if fastest else None,
           "fastest_close_latency_ms": fastest.latency_ms if fastest else None,
           "fastest_close_runtime": fastest.runtime if fastest else None,
           "speedup": dense.latency_ms / fastest.latency_ms if fastest and dense.latency_ms else None,
           "fastest_close_delta_points": 100 * (fastest.test_acc - dense.test_acc) if fastest else None,
           "single_methods_above_front": above, "wall_s": wall, "candidates": len(result.candidates)}
    print(f"\nbudget {max_bytes:,} B; winner {best.id}: {best.size_bytes:,} B ({row['ratio']:.1f}x smaller than "
          f"the dense fp32 file {dense.size_bytes:,} B), test {100 * best.test_acc:.2f}% vs dense "
          f"{100 * dense.test_acc:.2f}% ({row['delta_points']:+.2f} points; one binomial SE of the dense test "
          f"accuracy is {100 * se:.2f})")
    if fastest:
        print(f"fastest front point within 1 test point: {fastest.id} {fastest.latency_ms:.4f} ms on "
              f"{fastest.runtime} vs dense {dense.latency_ms:.4f} ms on {dense.runtime}: {row['speedup']:.2f}x, "
              f"test {row['fastest_close_delta_points']:+.2f} points")
    print(f"single-method results above the front by more than their interval: {above or 'none'}")
    print(f"wall time {wall / 60:.1f} min, {len(result.candidates)} candidates; report {result.files['report']}")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
