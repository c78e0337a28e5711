"""The report section of the pruning comparison (:mod:`compress.study.pruning`): a table with intervals over
seeds, the tie-rule verdicts, and accuracy against parameters per method. Reads ``pruning.json`` only."""

from __future__ import annotations

from pathlib import Path

from compress import _io
from compress._plot import pyplot, save_figure
from compress.study.pruning import PRUNE_METHODS, load_pruning
from compress.study.stats import Interval, mean_ci, verdict

__all__ = ["summarize_pruning", "pruning_section", "pruning_figure", "CSV_COLUMNS"]

CSV_COLUMNS = ["run_id", "family", "budget", "method", "seed", "param_count", "macs", "val_acc", "test_acc",
               "best_epoch", "epochs", "max_epochs", "converged", "source_param_count", "source_epochs",
               "train_seconds", "run_dir"]


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
    from matplotlib.ticker import NullFormatter

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
        ax.set(xscale="log", xlabel="parameters (budget)", ylabel="accuracy %", title=family)
        budgets = sorted({r["budget"] for r in rows if r["family"] == family})
        ax.set_xticks(budgets, [f"{b / 1000:g}k" if b >= 1000 else str(b) for b in budgets])
        ax.xaxis.set_minor_formatter(NullFormatter())   # log-axis minor labels collide at two or three budgets
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
    e = cfg["epochs"]
    imp = doc.get("settings", {}).get("importance", "l1")
    factor = doc.get("settings", {}).get("source_factor", 4.0)
    lines = ["## Pruning, or training the small model from scratch (Liu et al. 2019)", "",
             f"At each budget the final weights of every method have seen at most {e} epochs of training, each run "
             "stopping early within its maximum (the sweep's patience rule): `scale` is the family scaled to the "
             f"budget (`{cfg['policies'][0]}` policy) and trained from scratch ({e} epochs, the sweep's runs); "
             f"`prune` trains a model {factor:g}x the largest budget ({e // 2} epochs), prunes it to the budget "
             f"(`compress.prune`, {imp} importance, the same ratio in every layer) and fine-tunes it "
             f"({e - e // 2} epochs); `prune-scratch` trains the pruned architecture from random weights ({e} "
             "epochs; Liu et al.'s Scratch-E). Accuracy: "
             f"{'test' if rows[0]['metric'] == 'test_acc' else 'validation'}, mean over seeds with a 95% interval "
             "(Student's t); a method wins only when the intervals do not overlap and the means differ by at least 1 "
             "point (`compress.study.stats.verdict`); otherwise a tie.", ""]
    lines += _epochs_line(doc) + [""]
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
    lines += ["", "![pruning vs scaling](pruning_vs_params.png)", "",
              "Every run's figures: `pruning.csv` (one row per run; the larger models are the `source` rows).", ""]
    _io.write_csv(Path(out_dir) / "pruning.csv", doc["records"] + doc.get("sources", []), CSV_COLUMNS)
    return lines


def _epochs_line(doc: dict) -> list[str]:
    """Epochs trained (mean) against each method's maximum, and how many runs converged."""
    parts = []
    groups = [("source", doc.get("sources", []))] + [(m, [r for r in doc["records"] if r["method"] == m])
                                                    for m in doc["methods"]]
    for method, rs in groups:
        if rs:
            mean = sum(r["epochs"] for r in rs) / len(rs)
            top = max(r.get("max_epochs") or r["epochs"] for r in rs)
            conv = sum(bool(r.get("converged")) for r in rs)
            parts.append(f"{'prune source' if method == 'source' else method} {mean:.1f} of {top} "
                         f"({conv}/{len(rs)} converged)")
    return ["Epochs trained, mean over runs, of the maximum: " + "; ".join(parts) + "."] if parts else []


def _versus(by: dict, family: str, budget: int, a: str, b: str) -> str:
    ra, rb = by.get((family, budget, a)), by.get((family, budget, b))
    if ra is None or rb is None:
        return "-"
    v = verdict(ra["acc"], rb["acc"])
    return "tie" if v == "tie" else (f"{a} wins" if v == "a" else f"{b} wins")
