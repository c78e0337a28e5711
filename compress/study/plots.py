"""Figures of a study: training curves, accuracy against size with the Pareto front, latency against MACs.

They read results (histories, result rows) and never train; each is written atomically as PNG (and SVG).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from compress._plot import pyplot, save_figure
from compress.train.curves import training_curves   # a run's own figure, written by fit: kept importable from here

__all__ = ["training_curves", "pareto_front", "accuracy_vs", "latency_vs", "training_curves_grid"]


_FAMILY_STYLE = {"mobilenet_v1": ("C0", "o"), "mobilenet_v2": ("C4", "D"), "cnn": ("C1", "s"), "mlp": ("C2", "^")}
_X_LABELS = {"param_count": "parameters", "macs": "MACs (batch 1)", "bytes_fp16": "fp16 artifact bytes",
             "bytes_int8": "int8 artifact bytes", "bytes_fp32": "fp32 artifact bytes"}


def _style(family: str, index: int) -> tuple[str, str]:
    return _FAMILY_STYLE.get(family, (f"C{(index + 5) % 10}", "v"))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats with fewer-or-equal x and higher-or-equal y, sorted by x."""
    front, best = [], -float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def accuracy_vs(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, x: str = "param_count",
                limits: Sequence[float] = (), formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Mean accuracy (with its 95% interval as error bars) against ``x`` on a log axis, one series per family,
    and the Pareto front over all points. ``rows`` come from :func:`compress.study.results.summarize` (variant "full");
    ``limits`` draws vertical lines (byte limits)."""
    rows = [r for r in rows if r["variant"] == "full" and r.get("acc") and r.get(x)]
    if not rows:
        raise ValueError(f"accuracy_vs: no results with {x!r} to plot")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    families = sorted({r["family"] for r in rows})
    for i, family in enumerate(families):
        rs = sorted((r for r in rows if r["family"] == family), key=lambda r: r[x])
        color, marker = _style(family, i)
        xs = [r[x] for r in rs]
        ys = [100 * r["acc"]["mean"] for r in rs]
        err = [[100 * (r["acc"]["mean"] - r["acc"]["low"]) for r in rs],
               [100 * (r["acc"]["high"] - r["acc"]["mean"]) for r in rs]]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, capsize=3, label=f"{family}")
    front = pareto_front([(r[x], 100 * r["acc"]["mean"]) for r in rows])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", alpha=0.35, linestyle="--",
            label="Pareto front")
    for limit in limits:
        ax.axvline(limit, color="r", alpha=0.5, linestyle=":")
        ax.annotate(f"{limit:,.0f} B", (limit, ax.get_ylim()[0]), rotation=90, va="bottom", ha="right",
                    fontsize=8, color="r")
    metric = rows[0].get("metric", "acc")
    ax.set(xscale="log", xlabel=_X_LABELS.get(x, x),
           ylabel=f"{'test' if metric == 'test_acc' else 'validation'} accuracy (%)",
           title=f"accuracy vs {_X_LABELS.get(x, x)} (mean, 95% CI over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)


def latency_vs(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
               formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """CPU batch-1 latency against MACs and against parameters, per family (log-log): where FLOPs and
    latency part ways."""
    rows = [r for r in rows if r["variant"] == "full" and r.get("latency_ms") and r.get("macs")]
    if not rows:
        raise ValueError("latency_vs: no results with latency to plot")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), sharey=True)
    for ax, x in zip(axes, ("macs", "param_count")):
        for i, family in enumerate(sorted({r["family"] for r in rows})):
            rs = sorted((r for r in rows if r["family"] == family), key=lambda r: r[x])
            color, marker = _style(family, i)
            ax.plot([r[x] for r in rs], [r["latency_ms"] for r in rs], color=color, marker=marker, label=family)
        ax.set(xscale="log", yscale="log", xlabel=_X_LABELS[x])
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("latency (ms, CPU, batch 1, 1 thread)")
    axes[0].legend(fontsize=8)
    fig.suptitle("latency vs MACs and parameters")
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)


def training_curves_grid(runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]], path: str | os.PathLike, *,
                         formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Loss (top) and accuracy (bottom) against epoch for several runs side by side: ``[(label, history)]``."""
    if not runs:
        raise ValueError("training_curves_grid: no runs")
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, axes = plt.subplots(2, len(runs), figsize=(3.4 * len(runs), 5.2), squeeze=False)
    for col, (label, history) in enumerate(runs):
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
        for row_i, (kind, name) in enumerate((("loss", "loss"), ("acc", "accuracy"))):
            ax = axes[row_i][col]
            for split, style in (("train", "-"), ("val", "--")):
                values = [h.get(f"{split}_{kind}") for h in history]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, style, marker="o", markersize=3,
                            label="train" if split == "train" else "validation")
            ax.set(xlabel="epoch", ylabel=name)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if row_i == 0:
                ax.set_title(label, fontsize=9)
        axes[0][col].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)
