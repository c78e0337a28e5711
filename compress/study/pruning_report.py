"""The report section of the pruning comparison (:mod:`compress.study.pruning`): a table with intervals over
seeds, the tie-rule verdicts, and accuracy against parameters per method. Reads ``pruning.json`` only."""

from __future__ import annotations

from pathlib import Path

from compress._plot import pyplot, save_figure
from compress.study.pruning import PRUNE_METHODS, load_pruning
from compress.study.stats import Interval, mean_ci, verdict

__all__ = ["summarize_pruning", "pruning_section", "pruning_figure"]


def summarize_pruning(doc: dict) -> list[dict]:
    """One row per (family, budget, method): mean parameters and the accuracy's 95% interval over seeds."""
    records = doc["records"]
    metric = "test_acc" if records and all(r.get("test_acc") is not None for r in records) else "val_acc"
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get(metric) is not None:
            groups.setdefault((r["family"], r["budget"], r["method"]), []).append(r)
    rows = []
    for (family, budget, method), rs in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], PRUNE_METHODS.index(kv[0][2]))):
        rows.append({"family": family, "budget": budget, "method": method, "n": len(rs), "metric": metric,
                     "param_count": round(sum(r["param_count"] for r in rs) / len(rs)),
                     "acc": mean_ci([r[metric] for r in rs], bounds=(0.0, 1.0))})
    return rows


def pruning_figure(rows: list[dict], path: Path) -> list[Path]:
    """Accuracy against parameters, one panel per family, one line per method (bars: 95% intervals)."""
    plt = pyplot()
    families = sorted({r["family"] for r in rows})
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families):
        for method in PRUNE_METHODS:
            rs = sorted((r for r in rows if r["family"] == family and r["method"] == method),
                        key=lambda r: r["param_count"])
            if not rs:
                continue
            x = [r["param_count"] for r in rs]
            y = [100 * r["acc"].mean for r in rs]
            err = [[100 * (r["acc"].mean - r["acc"].low) for r in rs], [100 * (r["acc"].high - r["acc"].mean)
                                                                       for r in rs]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
        ax.set(xscale="log", xlabel="parameters", ylabel="accuracy %", title=family)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def _pct(iv: Interval) -> str:
    return f"{100 * iv.mean:.2f} [{100 * iv.low:.2f}, {100 * iv.high:.2f}]"


def pruning_section(sweep_dir: str | Path, out_dir: str | Path) -> list[str]:
    """Markdown lines (and ``pruning_vs_params.png`` in ``out_dir``), or [] when the sweep has no pruning runs."""
    doc = load_pruning(sweep_dir)
    if doc is None or not doc["records"]:
        return []
    rows = summarize_pruning(doc)
    pruning_figure(rows, Path(out_dir) / "pruning_vs_params.png")
    by = {(r["family"], r["budget"], r["method"]): r for r in rows}
    cfg = doc["config"]
    ep = lambda n: f"{n} epoch{'s' if n != 1 else ''}"  # noqa: E731
    lines = ["## Pruning, or training the small model from scratch (Liu et al. 2019)", "",
             f"At each budget, with the same {ep(cfg['epochs'])} seen by the final weights: `scale` is the family "
             "scaled to the budget and trained from scratch (the sweep's runs); `prune` trains a larger model "
             f"({ep(cfg['epochs'] // 2)}), prunes it to the budget (`compress.prune`, L1 group norm, the same "
             f"ratio in every layer) and fine-tunes it ({ep(cfg['epochs'] - cfg['epochs'] // 2)}); "
             "`prune-scratch` trains the pruned architecture from random weights. Accuracy: "
             f"{'test' if rows[0]['metric'] == 'test_acc' else 'validation'}, mean over seeds with a 95% interval; "
             "overlapping intervals are ties.", ""]
    head = "| family | budget | " + " | ".join(f"{m} params | {m} acc %" for m in doc["methods"]) + \
        " | prune vs scale | prune-scratch vs prune |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for family, budget in sorted({(r["family"], r["budget"]) for r in rows}):
        cells = []
        for m in doc["methods"]:
            r = by.get((family, budget, m))
            cells += [f"{r['param_count']:,}", _pct(r["acc"])] if r else ["-", "-"]
        lines.append(f"| {family} | {budget:,} | " + " | ".join(cells) + " | "
                     + _versus(by, family, budget, "prune", "scale") + " | "
                     + _versus(by, family, budget, "prune-scratch", "prune") + " |")
    lines += ["", "![pruning vs scaling](pruning_vs_params.png)", ""]
    return lines


def _versus(by: dict, family: str, budget: int, a: str, b: str) -> str:
    ra, rb = by.get((family, budget, a)), by.get((family, budget, b))
    if ra is None or rb is None:
        return "-"
    v = verdict(ra["acc"], rb["acc"])
    return "tie" if v == "tie" else (f"{a} wins" if v == "a" else f"{b} wins")
