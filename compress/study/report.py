"""Markdown reports under ``reports/``: a sweep's figures and tables, and the answers the seed reports gave by
hand, computed from the results (never retrained).

``write_report(sweep_dir, out_dir)`` writes ``out_dir/README.md`` and its figures. Accuracy comparisons use
95% intervals over seeds (:mod:`compress.study.stats`): a family "wins" only when the intervals do not overlap
and the means are at least one point apart, otherwise the result is reported as a tie. With several scaling policies, families are compared each at its best
policy (:func:`~compress.study.results.best_policies`) and the other policies appear as an ablation.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, overload

from compress import _io
from compress.models.scaling import architecture_shape
from compress.study import plots
from compress.study.config import data_settings
from compress.study.evidence_flags import EDGE_POINTS, MIN_SEEDS, Compared, point_label, weak_evidence
from compress.study.results import best_policies, half_width, load_results, short_of_target, summarize
from compress.study.stats import MIN_DIFFERENCE, Interval, verdict

__all__ = ["BYTE_LIMITS", "write_report", "compare_families", "crossings", "at_best_policy"]

BYTE_LIMITS = (225_000, 650_000)   # the course's strong and simple baselines (HW8)


@overload
def _iv(d: dict) -> Interval: ...
@overload
def _iv(d: None) -> None: ...
def _iv(d: dict | None) -> Interval | None:
    return None if d is None else Interval(d["mean"], d["low"], d["high"], d["n"], d["std"], d["method"])


def _pct(iv: Interval | None) -> str:
    if iv is None:
        return "-"
    if iv.method == "none":
        return f"{100 * iv.mean:.1f}"
    return f"{100 * iv.mean:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not float(v).is_integer():
        return f"{v:,.2f}"
    return f"{int(v):,}"


def _points(diff: float) -> str:
    """A difference of fractions as signed percentage points, never "-0.0"."""
    return f"{round(100 * diff, 1) + 0.0:+.1f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def compare_families(rows: list[dict], a: str, b: str) -> list[dict]:
    """Per budget where both families ran (variant "full"): their intervals, the difference of means and the
    verdict (``a``, ``b`` or ``"tie"``)."""
    by = {(r["family"], r["budget"]): r for r in rows if r["variant"] == "full"}
    out = []
    for budget in sorted({r["budget"] for r in rows}):
        ra, rb = by.get((a, budget)), by.get((b, budget))
        if not ra or not rb or ra["acc"] is None or rb["acc"] is None:
            continue
        ia, ib = _iv(ra["acc"]), _iv(rb["acc"])
        winner = {"a": a, "b": b, "tie": "tie"}[verdict(ia, ib)]
        out.append({"budget": budget, "a": a, "b": b, "params_a": ra["param_count"], "params_b": rb["param_count"],
                    "acc_a": ia, "acc_b": ib, "diff": ia.mean - ib.mean, "verdict": winner})
    return out


def crossings(comparison: list[dict]) -> list[str]:
    """Where the mean-accuracy curves of two families cross (sign change of the difference between budgets),
    with the crossing interpolated in log-parameters."""
    notes = []
    for p, q in zip(comparison, comparison[1:]):
        if p["diff"] == 0 or p["diff"] * q["diff"] < 0:
            xa = math.log10(math.sqrt(p["params_a"] * p["params_b"]))
            xb = math.log10(math.sqrt(q["params_a"] * q["params_b"]))
            t = p["diff"] / (p["diff"] - q["diff"]) if p["diff"] != q["diff"] else 0.5
            at = 10 ** (xa + t * (xb - xa))
            lead_before = p["a"] if p["diff"] > 0 else p["b"]
            lead_after = q["a"] if q["diff"] > 0 else q["b"]
            noise = (" — at least one side of the crossing is a tie, so it is within the noise"
                     if "tie" in (p["verdict"], q["verdict"]) else "")
            notes.append(f"the mean curves of {p['a']} and {p['b']} cross between the {p['budget']:,} and "
                         f"{q['budget']:,} budgets (about {at:,.0f} params, interpolated): {lead_before} ahead "
                         f"below, {lead_after} above{noise}")
    return notes


def _comparison_section(rows: list[dict], families: list[str]) -> list[str]:
    lines = []
    for a, b in itertools.combinations(families, 2):
        comp = compare_families(rows, a, b)
        if not comp:
            continue
        lines += [f"### {a} vs {b}", ""]
        table = [[f"{c['budget']:,}", f"{c['params_a']:,.0f} / {c['params_b']:,.0f}", _pct(c["acc_a"]),
                  _pct(c["acc_b"]), _points(c["diff"]), c["verdict"]] for c in comp]
        lines += [_table(["budget", "params (a / b)", f"{a} acc %", f"{b} acc %", "a - b (points)", "verdict"],
                         table), ""]
        wins = {c["verdict"] for c in comp}
        summary = []
        for c in comp:
            if c["verdict"] == "tie":
                summary.append(f"at {c['budget']:,} params: tie ({_points(c['diff'])} points, "
                               + ("intervals overlap)" if c["acc_a"].overlaps(c["acc_b"]) else
                                  f"under the {100 * MIN_DIFFERENCE:g}-point minimum difference)"))
            else:
                winner, loser = (a, b) if c["verdict"] == a else (b, a)
                summary.append(f"at {c['budget']:,} params: {winner} beats {loser} by {abs(100 * c['diff']):.1f} points")
        lines += ["- " + s for s in summary]
        lines += ["- " + s for s in crossings(comp)]
        if wins == {"tie"}:
            lines.append("- no difference beyond the noise at any budget")
        elif len(wins) == 1:
            lines.append(f"- {next(iter(wins))} wins at every budget")
        lines.append("")
    return lines


def _ablation_section(rows: list[dict], config: dict) -> list[str]:
    variants = [r for r in rows if r["variant"] != "full"]
    if not variants:
        return []
    family = config["ablate_family"]
    budget = config.get("ablate_budget") or max(config["budgets"])
    policy = config.get("ablate_policy") or (config.get("policies") or ["width"])[0]
    base = next((r for r in rows if r["family"] == family and r["budget"] == budget and r["variant"] == "full"
                 and r["policy"] == policy), None)
    lines = ["## Augmentation and normalization (ablation)", "",
             f"The same {family} at the {budget:,}-parameter budget, trained with each switch off "
             "(`normalize` off feeds raw 0..255 pixels; `augment` off trains on the images as they are).", ""]
    table = []
    base_iv = _iv(base["acc"]) if base else None
    if base:
        table.append(["full (baseline)", _pct(base_iv), "", ""])
    for r in variants:
        iv = _iv(r["acc"])
        diff = _points(iv.mean - base_iv.mean) if base_iv is not None else "-"
        said = {"a": "better", "b": "worse", "tie": "tie"}[verdict(iv, base_iv)] if base_iv is not None else "-"
        table.append([r["variant"], _pct(iv), diff, said])
    lines += [_table(["variant", "accuracy % [95% CI]", "vs baseline (points)", "verdict"], table), ""]
    return lines


def _sizing_entry(sizing: dict, r: dict) -> dict:
    entry = sizing.get(r["family"], {})
    if "build_args" in next(iter(entry.values()), {}) or not entry:      # compress.sweep/1 before policies
        return entry.get(str(r["budget"]), {})
    return entry.get(r.get("policy", "width"), {}).get(str(r["budget"]), {})


def _shape_section(sweep_dir: Path, rows: list[dict]) -> list[str]:
    path = sweep_dir / "sizing.json"
    if not path.exists():
        return []
    sizing = json.loads(path.read_text())
    table = []
    for r in rows:
        entry = _sizing_entry(sizing, r)
        if r["variant"] != "full" or "build_args" not in entry:
            continue
        shape = architecture_shape(entry["build_args"])
        last = f"{shape['last_map']}x{shape['last_map']}" if shape["last_map"] else "-"
        size = entry["build_args"].get("input_size", "?")
        table.append([r["family"], r.get("policy", "width"), f"{r['budget']:,}", f"{entry['width_mult']:.3f}",
                      f"{entry.get('depth_mult', 1.0):.3g}", f"{size}x{size}", str(shape["layers"]),
                      str(shape["narrowest"]), str(shape["widest"]), last])
    if not table:
        return []
    return ["## What the budget does to each architecture", "",
            "Each family at each budget and scaling policy, as sized: width and depth multipliers, input size, "
            "weight layers (conv + linear), the narrowest and widest hidden layer (channels or units) and the last "
            "feature map. A deep family squeezed into a small budget by its width alone gets layers a few channels "
            "wide; the compound and min-channels policies trade blocks for channels.", "",
            _table(["family", "policy", "budget", "width", "depth", "input", "weight layers", "narrowest", "widest",
                    "last feature map"], table), ""]


def at_best_policy(rows: list[dict]) -> list[dict]:
    """The rows of each family at its best scaling policy (all rows when each family has one policy)."""
    best = best_policies(rows)
    return [r for r in rows if r["variant"] != "full" or best.get(r["family"]) == r["policy"]]


def _policy_section(rows: list[dict]) -> list[str]:
    full = [r for r in rows if r["variant"] == "full" and r["acc"] is not None]
    if len({r["policy"] for r in full}) < 2:
        return []
    best = best_policies(rows)
    lines = ["## Scaling policies (ablation)", "",
             "Each family at each budget under every scaling policy; the comparison above uses each family's best "
             "policy (the highest mean accuracy over the budgets). `vs best` is the difference to that policy and "
             "its verdict under the tie rule.", ""]
    by = {(r["family"], r["budget"], r["policy"]): r for r in full}
    table = []
    for r in sorted(full, key=lambda r: (r["family"], r["budget"], r["policy"])):
        ref = by.get((r["family"], r["budget"], best[r["family"]]))
        if ref is None or ref is r:
            said, diff = ("best" if ref is r else "-"), ""
        else:
            diff = _points(r["acc"]["mean"] - ref["acc"]["mean"])
            said = {"a": "better", "b": "worse", "tie": "tie"}[verdict(_iv(r["acc"]), _iv(ref["acc"]))]
        table.append([r["family"], f"{r['budget']:,}", r["policy"], _num(r["param_count"]), _pct(_iv(r["acc"])),
                      diff, said])
    lines += [_table(["family", "budget", "policy", "params", "accuracy % [95% CI]", "vs best (points)", "verdict"],
                     table), ""]
    lines += [f"- best policy for {f}: `{p}`" for f, p in sorted(best.items())] + [""]
    return lines


def _budget_section(rows: list[dict]) -> list[str]:
    full = [r for r in rows if r["variant"] == "full" and r["acc"] is not None]
    lines = ["## What fits a byte limit", "",
             "Artifact bytes are the sizes of the `.npz` files `compress.export.artifact` writes (as `du --apparent-size` "
             "counts them).", ""]
    table = []
    for limit in BYTE_LIMITS:
        for codec in ("fp16", "int8"):
            fits = [r for r in full if r[f"bytes_{codec}"] is not None and r[f"bytes_{codec}"] <= limit]
            if not fits:
                table.append([f"{limit:,}", codec, "nothing fits", "", ""])
                continue
            best = max(fits, key=lambda r: r["acc"]["mean"])
            table.append([f"{limit:,}", codec, f"{best['family']} ({best['param_count']:,.0f} params)",
                          f"{best[f'bytes_{codec}']:,.0f}", _pct(_iv(best["acc"]))])
    lines += [_table(["limit (bytes)", "codec", "most accurate that fits", "bytes", "accuracy %"], table), ""]
    return lines


def _latency_section(rows: list[dict]) -> list[str]:
    full = [r for r in rows if r["variant"] == "full" and r.get("latency_ms")]
    if not full:
        return []
    runtimes = sorted({r.get("latency_runtime") or "eager" for r in full})
    lines = ["## Latency versus MACs", "",
             "CPU, batch 1, 1 thread, median of 30 calls, measured one run at a time after training, with the fastest "
             f"float runtime that passed its output check (here: {', '.join(runtimes)}; `runtime` column). Fewer MACs "
             "do not mean lower latency: tiny models are dominated by per-op overhead, and depthwise convolutions are "
             "memory-bound.", ""]
    table = [[r["family"], r.get("policy", "width"), f"{r['budget']:,}", _num(r["macs"]), f"{r['latency_ms']:.3f}",
              r.get("latency_runtime") or "eager",
              f"{1e6 * r['latency_ms'] / r['macs']:.3g}" if r["macs"] else "-"] for r in full]
    lines += [_table(["family", "policy", "budget", "MACs", "latency ms", "runtime", "ns per MAC"], table), ""]
    return lines


def write_report(sweep_dir: str | os.PathLike, out_dir: str | os.PathLike, *, title: str | None = None,
                 explain_md: str | os.PathLike | None = None, curves: int = 3) -> Path:
    """Write ``out_dir/README.md`` with figures for the sweep in ``sweep_dir``; returns the README path.

    ``explain_md``: a Markdown section written by ``compress explain`` to include (its figures are copied).
    ``curves``: how many runs' training curves to show (the best seed-0 run of each family at the largest budget).
    """
    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    results = load_results(sweep_dir)
    if not results.get("records"):
        raise ValueError(f"{sweep_dir}: the sweep has no finished runs yet")
    meta = json.loads((sweep_dir / "sweep.json").read_text()) if (sweep_dir / "sweep.json").exists() else {}
    config = results["config"]
    all_rows = summarize(results)
    rows = at_best_policy(all_rows)                 # each family at its best scaling policy
    metric = all_rows[0]["metric"]
    out_dir.mkdir(parents=True, exist_ok=True)
    figs = {
        "params": plots.accuracy_vs(rows, out_dir / "accuracy_vs_params.png", x="param_count"),
        "bytes": plots.accuracy_vs(rows, out_dir / "accuracy_vs_bytes.png", x="bytes_fp16", limits=BYTE_LIMITS),
        "macs": plots.accuracy_vs(rows, out_dir / "accuracy_vs_macs.png", x="macs"),
    }
    if any(r.get("latency_ms") for r in rows):
        figs["latency"] = plots.latency_vs(rows, out_dir / "latency_vs_macs.png")
    curve_runs = _curve_runs(results, sweep_dir, curves, best_policies(all_rows))
    if curve_runs:
        figs["curves"] = plots.training_curves_grid(curve_runs, out_dir / "training_curves.png")

    data = meta.get("data", {})
    env = meta.get("environment", {})
    families = list(config["families"])
    policies = config.get("policies") or ["width"]
    name = title or f"Sweep report: {sweep_dir.name}"
    lines = [f"# {name}", "",
             f"Generated by `compress report {sweep_dir}` from `{sweep_dir}/results.json` "
             f"({len(results['records'])} runs); figures read the results file only.", "",
             "## Setup", "",
             f"- data: `{config['data']}` ({data.get('train', '?')} train / {data.get('val', '?')} validation / "
             f"{data.get('test', '?')} test images, {data.get('in_chans', '?')}x{data.get('input_size', '?')}x"
             f"{data.get('input_size', '?')}, {len(data.get('class_names', [])) or '?'} classes)",
             f"- families: {', '.join(families)}; parameter budgets: {', '.join(f'{b:,}' for b in config['budgets'])}; "
             f"each family sized to each budget with `compress.models.scaling.scale_to` along the scaling "
             f"polic{'ies' if len(policies) > 1 else 'y'} {', '.join(f'`{p}`' for p in policies)} (the largest "
             "model within the budget)",
             "- " + data_settings(config, native_size=data.get("native_size"), input_size=data.get("input_size"),
                                  flip_invariant=data.get("flip_invariant")),
             _training_line(config),
             f"- accuracy: {'test' if metric == 'test_acc' else 'validation'} accuracy of the best-validation "
             "epoch; mean over seeds with a 95% interval (Student's t over seeds; with one seed, the binomial "
             "Wilson interval of the test set); differences inside the intervals, or smaller than "
             f"{100 * MIN_DIFFERENCE:g} point(s) (the test set's own sampling noise, which the seed interval leaves "
             "out; `compress.study.stats`), are ties",
             f"- machine: {env.get('device_name', '?')}, torch {env.get('torch', '?')}, "
             f"{env.get('cpu_count', '?')} CPUs, {env.get('torch_threads', '?')} torch threads", ""]
    lines += _summary_section(all_rows, config, _compared(rows, all_rows, config, families))
    if results.get("skipped"):
        lines += ["Skipped points (the budget is below the family's smallest model):", ""]
        lines += [f"- {s['family']} ({s.get('policy', 'width')}) at {s['budget']:,}: {s['reason']}"
                  for s in results["skipped"]] + [""]
    if results.get("failed"):
        lines += ["Failed runs (not in the figures; rerunning the sweep tries them again):", ""]
        lines += [f"- {f['run_id']}: {f['error']}" for f in results["failed"]] + [""]
    lines += ["## Results", "",
              _table(["family", "budget", "policy", "variant", "width", "depth", "input", "params", "MACs",
                      "fp16 bytes", "int8 bytes", "val acc %", "test acc %", "epochs", "converged", "train s",
                      "latency ms"],
                     [[r["family"], f"{r['budget']:,}", r["policy"], r["variant"], f"{r['width_mult']:.3f}",
                       f"{r['depth_mult']:.3g}", str(r["input_size"] or "-"), _num(r["param_count"]), _num(r["macs"]),
                       _num(r["bytes_fp16"]), _num(r["bytes_int8"]), _pct(_iv(r["val_acc"])),
                       _pct(_iv(r["test_acc"])), _num(r["epochs"]), f"{r['converged']}/{r['n']}",
                       _num(r["train_seconds"]), f"{r['latency_ms']:.3f}" if r.get("latency_ms") else "-"]
                      for r in all_rows]), "",
              "`epochs`: mean epochs trained (early stopping ends a run before the maximum); `converged`: seeds "
              "whose validation accuracy gained no more than `min_delta` over their last `patience` epochs "
              "(`compress.train.loop.converged`).", "",
              "![accuracy vs parameters](accuracy_vs_params.png)", "",
              "![accuracy vs artifact bytes](accuracy_vs_bytes.png)", "",
              "![accuracy vs MACs](accuracy_vs_macs.png)", "",
              "## Which family wins at equal parameters", ""]
    if len(policies) > 1:
        lines += ["Each family at its best scaling policy: " + ", ".join(
            f"{f} `{p}`" for f, p in sorted(best_policies(all_rows).items())) + ".", ""]
    lines += _comparison_section(rows, families)
    lines += _policy_section(all_rows)
    lines += _shape_section(sweep_dir, all_rows)
    lines += _ablation_section(all_rows, config)
    lines += _budget_section(rows)
    lines += _latency_section(rows)
    if "latency" in figs:
        lines += ["![latency vs MACs](latency_vs_macs.png)", ""]
    if curve_runs:
        lines += ["## Training curves", "", "Loss and accuracy per epoch, train and validation: "
                  + ", ".join(f"`{label}`" for label, _ in curve_runs) + ".", "",
                  "![training curves](training_curves.png)", ""]
    from compress.study.pruning_report import pruning_section   # `compress sweep --methods` (issue 11)

    lines += pruning_section(sweep_dir, out_dir)
    if explain_md is not None:
        lines += _include_explain(Path(explain_md), out_dir)
    readme = out_dir / "README.md"
    _io.write_text(readme, "\n".join(lines).rstrip() + "\n")
    return readme


def _compared(rows: list[dict], all_rows: list[dict], config: dict, families: list[str]) -> list[Compared]:
    """Every verdict the report makes: families at their best policy, each policy against the best, each
    ablation against its baseline."""
    out = [Compared(f"{a} vs {b} at {c['budget']:,}", c["acc_a"], c["acc_b"], c["verdict"])
           for a, b in itertools.combinations(families, 2) for c in compare_families(rows, a, b)]
    full = {(r["family"], r["budget"], r["policy"]): r for r in all_rows if r["variant"] == "full" and r["acc"]}
    best = best_policies(all_rows)
    words = {"a": "better", "b": "worse", "tie": "tie"}
    for (family, budget, policy), r in sorted(full.items()):
        ref = full.get((family, budget, best.get(family)))
        if ref is not None and ref is not r:
            ia, ib = _iv(r["acc"]), _iv(ref["acc"])
            out.append(Compared(f"{family} {budget:,} {policy} vs {ref['policy']}", ia, ib, words[verdict(ia, ib)]))
    if config.get("ablate_family"):
        budget = config.get("ablate_budget") or max(config["budgets"])
        policy = config.get("ablate_policy") or (config.get("policies") or ["width"])[0]
        base = full.get((config["ablate_family"], budget, policy))
        for r in all_rows:
            if base is not None and r["variant"] != "full" and r["acc"] is not None:
                ia, ib = _iv(r["acc"]), _iv(base["acc"])
                out.append(Compared(f"{point_label(r)} vs full", ia, ib, words[verdict(ia, ib)]))
    return out


def _summary_section(all_rows: list[dict], config: dict, compared: list[Compared]) -> list[str]:
    """The interval target (met, or what missed it with its seed count) and the weak-evidence flags."""
    lines = []
    target = config.get("target_halfwidth")
    if target:
        counts = sorted({r["n"] for r in all_rows})
        grown = [r for r in all_rows if r["n"] > config["seeds"]]
        short = short_of_target(all_rows, target)
        seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        lines.append(f"- interval target +-{target:g} points ({seeds} seeds per point"
                     + (": more seeds for " + ", ".join(f"{point_label(r)} ({r['n']})" for r in grown) if grown
                        else "") + "): "
                     + ("every 95% interval (validation and test) is within it" if not short else
                        f"**not reached** by {len(short)} point(s): " + ", ".join(
                            f"{point_label(r)} (+-{100 * (half_width(r) or 0.0):.1f} with {r['n']} seeds)" for r in short)))
    flags = weak_evidence(all_rows, compared)
    lines += flags or [f"- weak evidence: none flagged (every point has at least {MIN_SEEDS} seeds and intervals "
                       "of non-zero width, most of its runs converged, and no verdict is within "
                       f"{EDGE_POINTS:g} points of the tie rule's limits)"]
    return ["## Summary", ""] + lines + [""]


def _training_line(config: dict) -> str:
    train = config.get("train") or {}
    patience = config.get("patience")
    min_delta = config.get("min_delta", train.get("min_delta", 0.0))
    stop = (f"up to {config['epochs']} epochs (cosine schedule over them), early stopping after {patience} epochs "
            f"without a validation gain above {100 * min_delta:g} points" if patience else f"{config['epochs']} epochs")
    target = config.get("target_halfwidth")
    more = (f", more for each point whose 95% interval was wider than +-{target:g} points (up to "
            f"{config.get('max_seeds') or 4 * config['seeds']}; the new seeds of a point trained together, in rounds)"
            if target else "")
    return (f"- {config['seeds']} seed(s) per point{more}, trained together as one stacked model "
            f"(`compress.train.fit_many`); {stop}, batch {config['batch_size']}, peak lr {config['lr']}"
            + (f", extra settings {train}" if train else ""))


def _curve_runs(results: dict, sweep_dir: Path, count: int, best: dict) -> list[tuple[str, list[dict]]]:
    full = [r for r in results["records"] if r["variant"] == "full" and r["seed"] == 0
            and best.get(r["family"], "width") == r.get("policy", "width")]
    if not full or count <= 0:
        return []
    top = max(r["budget"] for r in full)
    chosen = sorted((r for r in full if r["budget"] == top), key=lambda r: r["family"])[:count]
    out = []
    for r in chosen:
        path = sweep_dir / r["run_dir"] / "history.json"
        if path.exists():
            out.append((r["run_id"], json.loads(path.read_text())))
    return out


def _include_explain(md: Path, out_dir: Path) -> list[str]:
    """Copy an explain section and the images it links next to the report."""
    if not md.exists():
        raise FileNotFoundError(f"explain section {md} not found (run `compress explain RUN` first)")
    target = out_dir / "explain"
    target.mkdir(exist_ok=True)
    for p in md.parent.iterdir():
        if p.suffix.lower() in (".png", ".svg"):
            shutil.copyfile(p, target / p.name)
    text = md.read_text()
    # links in the section are relative to its folder; re-point them into explain/
    for p in md.parent.iterdir():
        if p.suffix.lower() in (".png", ".svg"):
            text = text.replace(f"]({p.name})", f"](explain/{p.name})")
    text = "\n".join(("#" + line) if line.startswith("#") else line for line in text.splitlines())
    return ["## Looking inside the best model", "", text, ""]
