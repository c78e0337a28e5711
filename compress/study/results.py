"""A sweep's results: reading ``results.json``, per-point summaries with intervals, the best run.

``results.json`` is ``{"format", "config", "records", "skipped", "failed"}``, one record per finished run
(:func:`compress.study.records.write_results` writes it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["SWEEP_FORMAT", "load_results", "summarize", "half_width", "short_of_target", "best_record",
           "best_policies"]

SWEEP_FORMAT = "compress.sweep/1"


def load_results(path: str | os.PathLike) -> dict:
    """Read a sweep's ``results.json`` (``path`` is the sweep folder or the file)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no sweep results at {file} (run `compress sweep --out {path}` first)")
    try:
        results = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not a results file ({exc})") from None
    if results.get("format") != SWEEP_FORMAT:
        raise ValueError(f"{file}: format {results.get('format')!r}, expected {SWEEP_FORMAT!r}")
    return results


def summarize(results: dict, *, metric: str | None = None) -> list[dict]:
    """One row per (family, budget, variant): mean figures and 95% intervals of val/test accuracy over seeds.

    ``metric`` (``"test_acc"`` or ``"val_acc"``; default test when the data have a test split) is copied
    to ``acc`` for plots and the report.
    """
    from compress.study.stats import mean_ci

    records = results.get("records", [])
    if metric is None:
        metric = "test_acc" if records and all(r.get("test_acc") is not None for r in records) else "val_acc"
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["family"], r["budget"], r.get("policy", "width"), r["variant"]), []).append(r)
    rows = []
    for (family, budget, policy, variant), rs in sorted(groups.items()):
        mean = lambda k: (sum(r[k] for r in rs) / len(rs)) if all(r.get(k) is not None for r in rs) else None  # noqa: E731
        row = {"family": family, "budget": budget, "policy": policy, "variant": variant, "n": len(rs),
               "seeds": sorted(r["seed"] for r in rs), "epochs": mean("epochs"),
               "converged": sum(1 for r in rs if r.get("converged")),
               "unconverged": sum(1 for r in rs if r.get("converged") is False),   # None: not measured
               "input_size": rs[0].get("input_size"), "depth_mult": rs[0].get("depth_mult", 1.0),
               "latency_runtime": rs[0].get("latency_runtime")}
        for k in ("width_mult", "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "train_seconds",
                  "latency_ms"):
            row[k] = mean(k)
        for k in ("param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8"):
            row[k] = None if row[k] is None else int(round(row[k]))   # compressed sizes vary a little by seed
        for k, n_key in (("val_acc", "n_val"), ("test_acc", "n_test")):
            vals = [r[k] for r in rs if r.get(k) is not None]
            row[k] = mean_ci(vals, n_eval=rs[0].get(n_key), bounds=(0.0, 1.0)).to_dict() if vals else None
        row["acc"] = row[metric]
        row["metric"] = metric
        rows.append(row)
    return rows


def half_width(row: dict) -> float | None:
    """The widest half width (accuracy, fraction) of a summary row's 95% intervals, validation and test; None
    when it has neither."""
    widths = [(row[k]["high"] - row[k]["low"]) / 2 for k in ("val_acc", "test_acc") if row.get(k)]
    return max(widths) if widths else None


def short_of_target(rows: list[dict], target_points: float | None) -> list[dict]:
    """The summary rows whose widest interval (:func:`half_width`) is wider than +-``target_points`` accuracy
    points (none without a target): what an interval target did not reach."""
    if target_points is None:
        return []
    return [r for r in rows if (half_width(r) or 0.0) > target_points / 100 + 1e-12]


def best_record(results: dict, *, variant: str = "full") -> dict | None:
    """The record of the lowest seed of the most accurate point (family and policy, mean over seeds) at the
    largest budget, or None when no run of ``variant`` has an accuracy."""
    rows = [r for r in summarize(results) if r["variant"] == variant and r["acc"] is not None]
    if not rows:
        return None
    top = max(r["budget"] for r in rows)
    best = max((r for r in rows if r["budget"] == top), key=lambda r: r["acc"]["mean"])
    return next(r for r in results["records"]
                if r["family"] == best["family"] and r["budget"] == top and r["variant"] == variant
                and r.get("policy", "width") == best["policy"] and r["seed"] == min(best["seeds"]))


def best_policies(rows: list[dict]) -> dict[str, str]:
    """family -> its best scaling policy: the highest mean accuracy averaged over the budgets where every one of
    the family's policies ran (variant "full"); ties go to the policy listed first in the rows' order."""
    by: dict[str, dict[str, dict[int, float]]] = {}
    for r in rows:
        if r["variant"] == "full" and r["acc"] is not None:
            by.setdefault(r["family"], {}).setdefault(r["policy"], {})[r["budget"]] = r["acc"]["mean"]
    best = {}
    for family, policies in by.items():
        common = set.intersection(*(set(b) for b in policies.values()))
        score = {p: (sum(b[x] for x in common) / len(common) if common else -1.0) for p, b in policies.items()}
        best[family] = max(policies, key=lambda p: score[p])
    return best
