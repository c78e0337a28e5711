"""A search's outputs: ``candidates.csv``/``.json``, ``pareto.png`` (accuracy against bytes and against latency,
the fronts drawn, one marker per method, the budget lines, the dense model), ``report.md`` (the winner and why, the
ShrinkBench comparison) and ``best.<format>`` with its ONNX file where the winner runs on an ONNX runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from compress import _io
from compress.search.candidates import COLUMNS, METHODS, Candidate, pareto_front

__all__ = ["write_outputs", "plot_front", "markdown", "describe_budget", "ONNX_RUNTIMES", "ONNX_INT8_RUNTIMES"]


def describe_budget(budget) -> str:
    """``"artifact <= 225,000 bytes, latency <= 2 ms (batch 1, 1 thread)"``: what a search's budget limits."""
    text = f"artifact <= {budget.max_bytes:,} bytes"
    if budget.max_latency_ms is not None:
        text += (f", latency <= {budget.max_latency_ms:g} ms (batch {budget.batch_size}, {budget.threads} "
                 f"thread{'s' if budget.threads > 1 else ''})")
    return text

ONNX_RUNTIMES = ("onnxruntime", "openvino")                  # float runtimes that run an ONNX file
ONNX_INT8_RUNTIMES = ("onnxruntime_int8", "openvino_int8")   # ... and the int8 ones (a QDQ file)
_MARKERS = {"dense": "*", "joint": "o", "codec": "s", "deep": "D", "prune": "^", "scaled": "v", "random": "x"}
_COLORS = {"dense": "black", "joint": "tab:orange", "codec": "tab:green", "deep": "tab:red", "prune": "tab:purple",
           "scaled": "tab:brown", "random": "tab:pink"}   # one color per method in both panels


def write_outputs(result, ctx) -> dict[str, str]:
    """Write every output of ``result`` into ``ctx.out``; returns ``{what: path}``."""
    out: Path = ctx.out
    files = {}
    _io.write_csv(out / "candidates.csv", [c.row() for c in result.candidates], COLUMNS)
    _io.write_json(out / "candidates.json", result.to_dict())
    files["candidates"] = str(out / "candidates.csv")
    if result.best is not None:
        fmt = ctx.config.format
        best = out / f"best.{fmt}"
        with _io.atomic_path(best) as tmp:
            shutil.copyfile(out / result.best.artifact, tmp)
        files["best"] = str(best)
        onnx = _write_onnx(result.best, best, ctx)
        if onnx:
            files["onnx"] = onnx
    else:
        for stale in (out / f"best.{ctx.config.format}", out / "best.onnx"):
            stale.unlink(missing_ok=True)    # a resumed search that no longer has a winner keeps no old one
    plot = plot_front(result, out / "pareto.png")
    if plot:
        files["plot"] = plot
    _io.write_text(out / "report.md", markdown(result, ctx, files))
    files["report"] = str(out / "report.md")
    return files


def _write_onnx(best: Candidate, path: Path, ctx) -> str | None:
    target = path.with_suffix(".onnx")
    if best.runtime in ONNX_INT8_RUNTIMES:
        from compress.export.int8 import export_int8_artifact
        from compress.int8 import Int8Config

        config = Int8Config(activations="int8") if best.runtime.startswith("openvino") else Int8Config()
        export_int8_artifact(path, target, ctx.bundle, normalizer=ctx.src.normalizer, config=config)
    elif best.runtime in ONNX_RUNTIMES:
        from compress.export.artifact import load
        from compress.onnx import export_onnx

        export_onnx(load(path), target, ctx.shape, normalizer=ctx.src.normalizer,
                    class_names=list(ctx.src.class_names))
    else:
        target.unlink(missing_ok=True)
        return None
    return str(target)


def plot_front(result, path: Path) -> str | None:
    """Two panels, validation accuracy against file bytes and against latency, each with its own front."""
    from compress._plot import pyplot, save_figure

    rows = [c for c in result.candidates if not c.error and c.val_acc is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    budget = result.budget
    for ax, axis, limit, label in ((axes[0], "size_bytes", budget.max_bytes, "artifact file (bytes)"),
                                   (axes[1], "latency_ms", budget.max_latency_ms,
                                    f"latency (ms, batch {budget.batch_size}, {budget.threads} thread(s))")):
        pts = [c for c in rows if getattr(c, axis) is not None]
        for method in METHODS:
            mine = [c for c in pts if c.method == method]
            if mine:
                ax.scatter([getattr(c, axis) for c in mine], [100 * c.val_acc for c in mine],
                           marker=_MARKERS.get(method, "o"), s=90 if method == "dense" else 36,
                           color=_COLORS.get(method, "tab:gray"),
                           label=METHODS[method], alpha=0.85)
        front = sorted(pareto_front(pts, axes=(axis,)), key=lambda c: getattr(c, axis))
        if front:
            accs = [c.val_acc for c in front if c.val_acc is not None]   # all of them: the front has accuracies
            ax.step([getattr(c, axis) for c in front], [100 * a for a in accs], where="post",
                    color="tab:blue", lw=1, label="front")
        best = result.best
        if best is not None and getattr(best, axis) is not None:
            ax.scatter([getattr(best, axis)], [100 * best.val_acc], s=220, facecolors="none", edgecolors="red",
                       lw=2, label="chosen")
        if limit is not None:
            ax.axvline(limit, color="red", ls="--", lw=1, label="budget")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"search: {len(rows)} candidates (validation split)")
    fig.tight_layout()
    save_figure(fig, path)
    return str(path)


def _pct(x: float | None) -> str:
    return f"{100 * x:.2f}" if x is not None else "-"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a and b else "-"


def markdown(result, ctx, files: dict[str, str]) -> str:
    """The report: the winner and why, the single-method results beside it, the front, every candidate."""
    b = result.budget
    dense = result.dense
    n_val, n_test = dense.val_n, dense.test_n
    src = ctx.src
    lines = [f"# Search: {Path(src.path).name if src.path else 'model'}, {describe_budget(b)}", ""]
    lines += [(f"Source run `{src.path}`" if src.path else f"Source model `{src.card.name}`") +
              f" ({dense.param_count:,} parameters, {dense.macs:,} MACs); data "
              f"`{src.data_source}`. Every accuracy is on the **validation split ({n_val} images)** unless marked "
              f"test; the **test split ({n_test} images)** is reported and never used to choose. Bytes are the "
              f"artifact files as written; latency is the median of {ctx.config.latency_repeats} calls after "
              f"{ctx.config.latency_warmup} warm-up calls at batch {b.batch_size} with {b.threads} thread(s), "
              f"each artifact on the fastest of the runtimes that can run it and whose outputs matched eager "
              f"({', '.join(ctx.runtimes)}); measured on this machine, one after another, with no training "
              f"running. {len(result.candidates)} candidates in {result.seconds / 60:.1f} min.", ""]
    best = result.best
    if best is None:
        lines += ["## No candidate meets the budget", "", "The nearest:", "", _table(result.nearest, dense), ""]
    else:
        why = (f"it has the highest validation accuracy of the {sum(c.fits for c in result.candidates)} "
               f"candidates within the budget" if len(result.tied) <= 1 else
               f"{len(result.tied)} candidates within the budget are tied with the most accurate one (at most "
               f"{ctx.config.tolerance_points:g} points less accurate on validation and not worse by McNemar's "
               f"exact test at 5% on the same images), and among those it is the fastest (latencies within 10% "
               f"count as equal), then the smallest")
        lines += ["## The winner", "", f"**{best.id}** ({METHODS.get(best.method, best.method)}): "
                  f"{best.size_bytes:,} bytes ({_ratio(dense.size_bytes, best.size_bytes)} smaller than the dense "
                  f"fp32 file), {best.macs:,} MACs ({_ratio(dense.macs, best.macs)} fewer), "
                  + (f"{best.latency_ms:.3f} ms on {best.runtime} ({_ratio(dense.latency_ms, best.latency_ms)} "
                     f"faster than the dense model on {dense.runtime}), " if best.latency_ms is not None else "")
                  + f"validation {_pct(best.val_acc)}% [{_pct(best.val_low)}, {_pct(best.val_high)}] vs "
                  f"{_pct(dense.val_acc)}% dense; test {_pct(best.test_acc)}% vs {_pct(dense.test_acc)}% dense. "
                  f"Chosen because {why}.", ""]
        if len(result.tied) > 1:
            lines += ["Tied with it: " + ", ".join(f"`{c.id}`" for c in result.tied if c is not best), ""]
        lines += [f"Written: `{Path(files['best']).name}`" + (f" and `{Path(files['onnx']).name}`" if "onnx" in files
                                                             else ""), ""]
    lines += ["## Against single methods (ShrinkBench)", "",
              "The best candidate of each method within the byte budget (any, when none fits), from this run:", ""]
    per_method = []
    for method in METHODS:
        mine = [c for c in result.candidates if c.method == method and not c.error and c.val_acc is not None]
        fitting = [c for c in mine if c.fits_bytes]
        if mine:
            per_method.append(max(fitting or mine, key=lambda c: (c.val_acc, -(c.size_bytes or 0))))
    lines += [_table(per_method, dense), ""]
    front = sorted([c for c in result.candidates if c.front], key=lambda c: c.size_bytes)
    lines += ["## Pareto front (bytes, latency, validation accuracy)", "", _table(front, dense), ""]
    if "plot" in files:
        lines += [f"![front]({Path(files['plot']).name})", ""]
    if result.skipped:
        lines += ["## Left out or failed", ""] + [f"- {s}" for s in result.skipped] + [""]
    lines += ["## Every candidate", "", _table(result.candidates, dense), ""]
    return "\n".join(lines)


def _table(rows: list[Candidate], dense: Candidate) -> str:
    head = ("| candidate | method | bytes | ratio | params | MACs | MAC ratio | latency ms | runtime | speed-up | "
            "val acc % [95%] | test acc % | fits |")
    out = [head, "|" + "|".join(["---"] * 13) + "|"]
    for c in rows:
        if c.error:
            out.append(f"| {c.id} | {METHODS.get(c.method, c.method)} | failed: {c.error[:80]} |" + " |" * 10)
            continue
        lat = f"{c.latency_ms:.3f}" if c.latency_ms is not None else "-"
        out.append(f"| {'**' + c.id + '**' if c.chosen else c.id} | {METHODS.get(c.method, c.method)} | "
                   f"{c.size_bytes:,} | "
                   f"{_ratio(dense.size_bytes, c.size_bytes)} | {c.param_count:,} | {c.macs:,} | "
                   f"{_ratio(dense.macs, c.macs)} | {lat} | {c.runtime or '-'} | "
                   f"{_ratio(dense.latency_ms, c.latency_ms)} | {_pct(c.val_acc)} [{_pct(c.val_low)}, "
                   f"{_pct(c.val_high)}] | {_pct(c.test_acc)} | {'yes' if c.fits else 'no'} |")
    return "\n".join(out)

