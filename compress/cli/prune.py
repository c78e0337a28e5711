"""``compress prune``: remove channels from a trained run's model for real, fine-tune, write a new run folder."""

from __future__ import annotations

import argparse
from typing import Any

from compress.cli._common import (add_budget_options, add_field, add_log_arguments, budget_from, finite_float, given,
                                  library_constant, parse_csv, parse_key_value)

PRUNE_CONFIG = "compress.prune.pruner:PruneConfig"
SUMMARY = "prune a trained run's channels (a smaller model) and write a run folder"


def _layer_ratio(text: str) -> tuple[str, float]:
    """argparse type: ``"PATH=R"`` -> ``(PATH, R)``."""
    path, sep, value = text.rpartition("=")
    try:
        ratio = finite_float(value)
    except argparse.ArgumentTypeError:
        ratio = None
    if not sep or not path.strip() or ratio is None:
        raise argparse.ArgumentTypeError(f"{text!r} must look like PATH=R, a module path and a ratio in [0, 1)")
    return path.strip(), ratio


def register(sub) -> None:
    from compress.prune.importance import IMPORTANCES   # a registry: filled as the library is imported

    p = sub.add_parser(
        "prune", help=SUMMARY,
        description="Structured pruning of RUN's model (compress.prune): channels coupled through residuals, "
                    "concatenations, depthwise and grouped convs go together; the result is a smaller model whose card "
                    "rebuilds it. Fine-tunes on the run's data and writes a run folder like `compress train`; "
                    "prints the before/after table.")
    p.add_argument("source", metavar="RUN", help="run folder to prune (from compress train)")
    target = p.add_argument_group("target (one of: a ratio, or a budget whose limits must all hold: "
                                  "compress.budget.Budget)")
    add_field(target, "--ratio", PRUNE_CONFIG, "ratio", type=finite_float, help="share of channels removed, in (0, 1)")
    add_budget_options(target)
    g = p.add_argument_group("pruning (compress.prune.PruneConfig)")
    add_field(g, "--importance", PRUNE_CONFIG, "importance", choices=sorted(IMPORTANCES))
    add_field(g, "--global", PRUNE_CONFIG, "global_ranking", switch=True, help="one ranking over all layers")
    add_field(g, "--round-to", PRUNE_CONFIG, "round_to", type=int, help="kept widths a multiple of this")
    add_field(g, "--min-width", PRUNE_CONFIG, "min_width", type=int, help="channels every layer keeps")
    add_field(g, "--steps", PRUNE_CONFIG, "steps", type=int, help="prune in N steps")
    add_field(g, "--schedule", PRUNE_CONFIG, "schedule", choices=library_constant("compress.prune.schedule:SCHEDULES"),
              help="share of the target per step")
    add_field(g, "--finetune-epochs", PRUNE_CONFIG, "finetune_epochs", type=int, help="epochs after each step")
    add_field(g, "--taylor-images", PRUNE_CONFIG, "taylor_images", type=int, help="images for --importance taylor")
    add_field(g, "--seed", PRUNE_CONFIG, "seed", type=int, help="random importance, fine-tuning")
    g.add_argument("--ignore", type=parse_csv, action="append", default=None, metavar="LAYER,...",
                   help="module paths whose channels stay, and everything under them (repeatable; default: none)")
    g.add_argument("--layer-ratio", type=_layer_ratio, action="append", default=None, metavar="PATH=R",
                   help="ratio R in [0, 1) for the layers under module PATH instead of --ratio (repeatable; "
                        "default: none)")
    add_field(g, "--prune-embedding", PRUNE_CONFIG, "prune_embedding", switch=True,
              help="also prune a transformer's embedding width (its heads with it where they are tied)")
    p.add_argument("--set", type=parse_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="a TrainConfig setting for fine-tuning (default: the run's own), e.g. --set lr=0.002")
    p.add_argument("--latency", action="store_true",
                   help="measure latency before and after (--latency-runtime, batch and threads; default eager, "
                        "batch 1, 1 thread)")
    p.add_argument("--out", required=True, help="run folder to create (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress while fine-tuning")
    add_log_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from compress import _io
    from compress.budget import Budget
    from compress.prune import PruneConfig
    from compress.prune.runs import final_metrics, prune_run
    from compress.track import Tracker, make_loggers

    # before any work: never the source run (or a folder holding it), an existing folder only with --overwrite
    _io.check_output_folder(args.out, inputs=[args.source, *([args.data] if getattr(args, "data", None) else [])],
                            overwrite=bool(args.overwrite))
    layers: dict[str, Any] = {"ignored_layers": [p for group in args.ignore or [] for p in group],
                              "layer_ratios": dict(args.layer_ratio or [])}
    config = PruneConfig(**given(args, PruneConfig), **{k: v for k, v in layers.items() if v},
                         budget=budget_from(args))
    latency = None
    if args.latency or (config.budget is not None and config.budget.max_latency_ms is not None):
        from compress.bench import check_runtime, latency_ms

        check_runtime((config.budget or Budget()).runtime)   # an unknown or missing runtime fails before any work
        latency = latency_ms
    tracker = Tracker(make_loggers(args.log, args.out, **given(args, make_loggers)), keep_open=True)
    result, out = prune_run(args.source, config, out=args.out, overwrite=args.overwrite, train=dict(args.set),
                            latency=latency, progress=False if args.quiet else None, loggers=tracker)
    if result.unknown:
        print("pinned (left unpruned): " + "; ".join(result.unknown), flush=True)
    if out.history:
        from compress.train.curves import training_curves

        training_curves(out.history, out.path / "curves.png", title="fine-tuning after the last pruning step")
        tracker.log_artifact(out.path / "curves.png")
    tracker.finish(final_metrics(result, out))
    print(result.table())
    print(f"run folder: {out.path}")
    return 0
