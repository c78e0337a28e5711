"""A sweep's results: reading ``results.json``, per-point summaries with intervals, the best run.

``results.json`` is ``{"format", "config", "records", "skipped"}``, one record per finished run
(:mod:`compress.study.sweep` writes it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["SWEEP_FORMAT", "load_results", "summarize", "best_record"]

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
        groups.setdefault((r["family"], r["budget"], r["variant"]), []).append(r)
    rows = []
    for (family, budget, variant), rs in sorted(groups.items()):
        mean = lambda k: (sum(r[k] for r in rs) / len(rs)) if all(r.get(k) is not None for r in rs) else None  # noqa: E731
        row = {"family": family, "budget": budget, "variant": variant, "n": len(rs),
               "seeds": sorted(r["seed"] for r in rs)}
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


def best_record(results: dict, *, variant: str = "full") -> dict | None:
    """The record of the lowest seed of the most accurate family (mean over seeds) at the largest budget, or
    None when no run of ``variant`` has an accuracy."""
    rows = [r for r in summarize(results) if r["variant"] == variant and r["acc"] is not None]
    if not rows:
        return None
    top = max(r["budget"] for r in rows)
    best = max((r for r in rows if r["budget"] == top), key=lambda r: r["acc"]["mean"])
    return next(r for r in results["records"]
                if r["family"] == best["family"] and r["budget"] == top and r["variant"] == variant
                and r["seed"] == min(best["seeds"]))
