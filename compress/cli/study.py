"""``compress study``: the default study in one command: sweep, look inside the best model, report."""

from __future__ import annotations

from compress.cli.sweep import add_sweep_options, config_from_args, make_executor

STUDY_DEFAULTS = {"ablate": ("augment", "normalize")}


def register(sub) -> None:
    p = sub.add_parser(
        "study", help="run the default study: sweep + explain the best model + report (the README's main job)",
        description="Sweep mobilenet_v1, cnn and mlp at matched parameter budgets over seeds (with the "
                    "augmentation/normalization ablation), explain the most accurate model of the largest "
                    "budget, and write the report. Resumable: rerun the same command to continue.")
    add_sweep_options(p)
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<data name>)")
    p.add_argument("--report", default=None, help="report folder (default reports/<data name>)")
    p.add_argument("--no-explain", action="store_true", help="skip the confusion matrix / saliency section")
    p.set_defaults(run=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from compress.cli.sweep import default_out
    from compress.report import write_report
    from compress.sweep import run_sweep, summarize

    start = time.perf_counter()
    config = config_from_args(args, **STUDY_DEFAULTS)
    out = Path(args.out or default_out(config.data))
    report = Path(args.report or default_out(config.data, root="reports"))
    results = run_sweep(config, out, executor=make_executor(args.jobs), overwrite=args.overwrite)
    explain_md = None
    if not args.no_explain:
        explain_md = _explain_best(results, out, summarize)
    readme = write_report(out, report, title=f"compress study: {config.data}", explain_md=explain_md)
    print(f"study finished in {time.perf_counter() - start:.0f} s: {readme}")
    return 0


def _explain_best(results: dict, out, summarize):
    """Explain seed 0 of the most accurate family at the largest budget; returns its explain.md path."""
    from compress import explain, train

    rows = [r for r in summarize(results) if r["variant"] == "full" and r["acc"] is not None]
    if not rows:
        return None
    top = max(r["budget"] for r in rows)
    best = max((r for r in rows if r["budget"] == top), key=lambda r: r["acc"]["mean"])
    record = next(r for r in results["records"]
                  if r["family"] == best["family"] and r["budget"] == top and r["variant"] == "full"
                  and r["seed"] == min(best["seeds"]))
    run = train.load_run(out / record["run_dir"])
    target = out / "explain"
    # 8 filters x 60 steps keeps the study's explain step to seconds; `compress explain` does more.
    config = explain.ExplainConfig(filters=8, filter=explain.FilterConfig(steps=60))
    explain.explain_model(run.model, run.data(), target, config=config, normalize=run.normalizer,
                          title=f"{record['run_id']}")
    return target / "explain.md"
