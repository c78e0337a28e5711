"""``compress search``: pruning, distillation, codecs and runtimes searched together under a byte and a latency
budget; every candidate kept, the Pareto front drawn, the winner written."""

from __future__ import annotations

import sys

from compress.cli._common import (BUDGET, add_field, add_log_arguments, finite_float, given, parse_count, parse_csv,
                                  positive_int, split_warnings)

SEARCH_CONFIG = "compress.search.config:SearchConfig"
SUMMARY = "the most accurate model of a run under a byte (and latency) budget, with its Pareto front"


def register(sub) -> None:
    from compress.cli.sweep import add_executor_options

    p = sub.add_parser(
        "search", help=SUMMARY,
        description="Search structured pruning (importances, uniform or global), fine-tuning with distillation from "
                    "the run's model, codecs, Deep Compression (sparsity, per-layer bits, Huffman) and the runtimes "
                    "that can execute each result together; every candidate is written, reloaded and measured for "
                    "real (file bytes, params, MACs, latency with checked outputs, validation accuracy with its "
                    "interval). The single-method results (codec only, Deep Compression only, pruning only, the "
                    "family scaled to the budget and trained from scratch) and a random-importance control run in "
                    "the same search. Writes DIR/candidates.csv and .json, pareto.png, report.md and best.npz (plus "
                    "best.onnx when the winner runs on an ONNX runtime). Resumes an interrupted search in the same "
                    "DIR. The test split is reported, never used to choose. Exit status 2 when no candidate meets "
                    "the budget (the nearest are listed).")
    p.add_argument("source", metavar="RUN", help="run folder of the trained model (from compress train)")
    b = p.add_argument_group("budget (compress.budget.Budget)")
    add_field(b, "--max-bytes", BUDGET, "max_bytes", type=parse_count, metavar="N", required=True,
              help="bytes of the artifact file, e.g. 225000 or 225k", none="required")
    add_field(b, "--max-latency-ms", BUDGET, "max_latency_ms", type=finite_float, metavar="MS",
              help="median ms per call on this machine (measured, after the models are made)", none="no limit")
    p.add_argument("--runtime", type=parse_csv, action="append", default=None, metavar="NAME[,NAME]",
                   help="the runtime(s) latency is measured on (default: every installed CPU runtime that can run "
                        "the candidate, torch.compile aside; see compress bench --list)")
    add_field(b, "--batch", BUDGET, "batch_size", dest="latency_batch", type=positive_int,
              help="images per call for the latency")
    add_field(b, "--threads", BUDGET, "threads", dest="latency_threads", type=positive_int,
              help="CPU threads for the latency (and for training, unless --train-threads)")
    g = p.add_argument_group("what is searched (compress.search.SearchConfig)")
    add_field(g, "--importances", SEARCH_CONFIG, "importances", type=parse_csv, metavar="NAME,...",
              help="channel importances for structured pruning (random always runs as the control)")
    add_field(g, "--scopes", SEARCH_CONFIG, "scopes", type=parse_csv, metavar="uniform,global",
              help="the same ratio per layer group, or one ranking over all layers")
    add_field(g, "--storage", SEARCH_CONFIG, "storage", type=parse_csv, metavar="CODEC,...",
              help="codecs the pruned structures are sized for (one structure per codec)")
    add_field(g, "--codecs", SEARCH_CONFIG, "codecs", type=parse_csv, metavar="CODEC,...",
              help="codecs every model is written with (see compress export --help)")
    add_field(g, "--no-deep", SEARCH_CONFIG, "deep", switch=False, help="no Deep Compression candidates")
    add_field(g, "--no-distill", SEARCH_CONFIG, "distill", switch=False,
              help="fine-tune pruned models on labels only")
    add_field(g, "--no-baselines", SEARCH_CONFIG, "baselines", switch=False,
              help="skip the single-method results and the random-importance control")
    add_field(g, "--finetune-epochs", SEARCH_CONFIG, "finetune_epochs", type=finite_float, none="the run's epochs",
              help="passes over the training split per pruned model")
    add_field(g, "--finetune-lr", SEARCH_CONFIG, "finetune_lr", type=finite_float, help="peak learning rate")
    add_field(g, "--deep-prune-epochs", SEARCH_CONFIG, "deep_prune_epochs", type=finite_float,
              none="1.5x the run's, at least 6", help="Deep Compression's gradual-pruning passes over the training split")
    add_field(g, "--deep-finetune-epochs", SEARCH_CONFIG, "deep_finetune_epochs", type=finite_float,
              none="0.75x the run's, at least 3", help="Deep Compression's quantization-aware passes")
    add_field(g, "--tolerance", SEARCH_CONFIG, "tolerance_points", type=finite_float, metavar="POINTS",
              help="validation accuracy (percentage points) the winner may give up for a faster, then smaller "
                   "model; never a difference the validation split resolves (McNemar's exact test, 5%%); "
                   "changing it on a finished search only chooses again")
    add_field(g, "--format", SEARCH_CONFIG, "format", choices=("npz", "pt"), help="artifact container")
    add_field(g, "--seed", SEARCH_CONFIG, "seed", type=int, help="pruning, fine-tuning and Deep Compression seed")
    add_field(g, "--train-threads", SEARCH_CONFIG, "threads", type=positive_int, none="torch's default",
              help="torch CPU threads while training")
    add_field(g, "--time-budget", SEARCH_CONFIG, "time_budget_s", type=str, metavar="DURATION", none="no limit",
              help="wall time for the whole search, e.g. 30m, 90s, 1h: the most promising models go first, what "
                   "does not fit is listed as left out")
    add_executor_options(p)
    p.add_argument("--out", required=True, metavar="DIR", help="search folder (an interrupted search resumes there)")
    p.add_argument("--overwrite", action="store_true", help="start again in a DIR holding another search")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_log_arguments(p, csv="each trained model's run folder and in DIR (one row per candidate)")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.budget import Budget
    from compress.cli.sweep import executor_from_args
    from compress.search import SearchBudgetError, SearchConfig, search
    from compress.search.report import describe_budget
    from compress.track import make_loggers

    budget = Budget(**given(args, Budget))
    settings = given(args, SearchConfig)
    if args.runtime:
        settings["runtimes"] = tuple(r for group in args.runtime for r in group)
    config = SearchConfig(**settings)
    executor = executor_from_args(args)
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        with split_warnings("search"):
            result = search(args.source, budget, config, out=args.out, executor=executor, overwrite=args.overwrite,
                            log=log, loggers=args.log, **given(args, make_loggers))
    except SearchBudgetError as exc:
        r = exc.result
        print(f"no candidate meets {describe_budget(budget)}; the nearest:")
        print(r.table(r.nearest))
        print(f"every candidate: {r.files.get('candidates')}; report: {r.files.get('report')}")
        return 2
    print(result.table())
    best = result.best
    assert best is not None   # search raises SearchBudgetError when nothing fits
    val = "no validation score" if best.val_acc is None else f"val {100 * best.val_acc:.2f}%"
    print(f"\nchosen: {best.id} ({best.size_bytes:,} bytes, {val}"
          + (f", {best.latency_ms:.3f} ms on {best.runtime}" if best.latency_ms is not None else "") + ")")
    for what in ("best", "onnx", "candidates", "plot", "report"):
        if what in result.files:
            print(f"wrote {result.files[what]}")
    return 0
