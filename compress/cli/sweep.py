"""``compress sweep``: train families at matched parameter budgets over seeds; resumable."""

from __future__ import annotations

from compress.cli._common import add_field, given, parse_count, parse_counts, parse_csv, parse_key_value, positive_int


def add_sweep_options(p, *, ablate_default: tuple[str, ...] | None = None) -> None:
    """Options shared by ``compress sweep`` and ``compress study``; defaults are SweepConfig's (``ablate``:
    ``ablate_default`` when given, as the study's)."""
    from compress.study import SweepConfig

    add_field(p, "--data", SweepConfig, "data", metavar="SOURCE",
              help="PATH (FER2013 CSV, .npz, image folder), 'default' or 'synthetic'")
    add_field(p, "--families", SweepConfig, "families", type=parse_csv, help="comma-separated families")
    add_field(p, "--budgets", SweepConfig, "budgets", type=parse_counts,
              help="comma-separated parameter budgets, e.g. 5k,20k,80k,300k")
    add_field(p, "--seeds", SweepConfig, "seeds", type=positive_int, help="seeds per point")
    add_field(p, "--epochs", SweepConfig, "epochs", type=positive_int, help="epochs per run")
    add_field(p, "--batch-size", SweepConfig, "batch_size", type=int, help="images per step")
    add_field(p, "--lr", SweepConfig, "lr", type=float, help="peak learning rate")
    ablate_help = "switch these off for one model, comma-separated: augment,normalize"
    if ablate_default is None:
        add_field(p, "--ablate", SweepConfig, "ablate", type=parse_csv, help=ablate_help)
    else:
        p.add_argument("--ablate", type=parse_csv, default=None,
                       help=f"{ablate_help}; 'none' for no ablation (default {','.join(ablate_default)})")
    add_field(p, "--ablate-family", SweepConfig, "ablate_family", help="family of the ablation runs")
    add_field(p, "--ablate-budget", SweepConfig, "ablate_budget", type=parse_count,
              help="budget of the ablation runs (none: the largest)")
    add_field(p, "--no-latency", SweepConfig, "latency", switch=False, help="skip the CPU batch-1 latency column")
    p.add_argument("--set", type=parse_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrainConfig setting, e.g. --set label_smoothing=0.1 (JSON value), repeatable")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="worker processes; CPU threads are divided between them (default 1)")
    p.add_argument("--overwrite", action="store_true", help="discard a sweep with another config in --out")


def config_from_args(args, *, ablate_default: tuple[str, ...] | None = None):
    """The SweepConfig of the options given (the others keep SweepConfig's defaults)."""
    from compress.study import SweepConfig

    settings = given(args, SweepConfig)
    if ablate_default is not None:
        ablate = ablate_default if args.ablate is None else args.ablate
        settings["ablate"] = tuple(a for a in ablate if a != "none")
    if args.set:
        settings["train"] = dict(args.set)
    return SweepConfig(**settings)


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="parameter-vs-accuracy sweep (families x budgets x seeds), resumable",
        description="For each family and parameter budget, size the model with compress.models.scaling, train it "
                    "for each seed and record params, MACs, artifact bytes, accuracy, time and latency in "
                    "OUT/results.csv and OUT/results.json. Rerunning the same command resumes.")
    add_sweep_options(p)
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<data name>)")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.study import default_folder, make_executor, run_sweep

    config = config_from_args(args)
    out = args.out or default_folder(config.data, "sweeps")
    results = run_sweep(config, out, executor=make_executor(args.jobs), overwrite=args.overwrite)
    print(f"{len(results['records'])} runs in {out}/results.csv; next: compress report {out}")
    return 0
