"""``compress sweep``: train families at matched parameter budgets over seeds; resumable."""

from __future__ import annotations

from compress.cli._common import (add_field, add_log_arguments, add_model_arguments, finite_float, given,
                                  library_constant, library_default, model_arguments, parse_count, parse_counts,
                                  parse_csv, parse_key_value, positive_int)

SWEEP_CONFIG = "compress.study.config:SweepConfig"
MAKE_EXECUTOR = "compress.study.executors:make_executor"
RAY_OPTIONS = "compress.study.ray_executor:RayOptions"
SUMMARY = "parameter-vs-accuracy sweep (families x budgets x seeds), resumable"


def add_sweep_options(p, *, ablate_default: tuple[str, ...] | None = None,
                      target_default: dict | None = None) -> None:
    """Options shared by ``compress sweep`` and ``compress study``; defaults are SweepConfig's (``ablate``:
    ``ablate_default`` when given, as the study's; ``target_halfwidth``, ``max_seeds``: ``target_default``'s)."""
    add_field(p, "--data", SWEEP_CONFIG, "data", metavar="SOURCE",
              help="PATH (FER2013 CSV, .npz, image folder), 'default' or 'synthetic'")
    add_field(p, "--families", SWEEP_CONFIG, "families", type=parse_csv,
              help="comma-separated families: registered models, PATH.py:NAME (importing the file runs its code), "
                   "torchvision:NAME, timm:NAME")
    add_model_arguments(p, flag=None)
    add_field(p, "--budgets", SWEEP_CONFIG, "budgets", type=parse_counts,
              help="comma-separated parameter budgets, e.g. 5k,20k,80k,300k")
    add_field(p, "--resolution", SWEEP_CONFIG, "resolution", type=float,
              help="resize the images to this fraction of their side (1: as stored)")
    add_field(p, "--policies", SWEEP_CONFIG, "policies", type=parse_csv,
              help="comma-separated scaling policies: width, compound, min_channels, compound_res")
    add_field(p, "--min-channels", SWEEP_CONFIG, "min_channels", type=positive_int,
              help="narrowest layer the min_channels policy aims for")
    add_field(p, "--seeds", SWEEP_CONFIG, "seeds", type=positive_int, help="seeds per point")
    target_help = ("then give more seeds (stacked, in rounds) to the points whose 95%% interval is wider than "
                   "+-P accuracy points, until it is within or --max-seeds is reached; the report lists what was not")
    seeds_help = "the most seeds a point gets with --target-halfwidth"
    if target_default is None:
        add_field(p, "--target-halfwidth", SWEEP_CONFIG, "target_halfwidth", type=finite_float, metavar="P",
                  help=target_help, none="every point keeps --seeds")
        add_field(p, "--max-seeds", SWEEP_CONFIG, "max_seeds", type=int, metavar="N", help=seeds_help,
                  none="4 x --seeds")
    else:
        p.add_argument("--target-halfwidth", type=finite_float, default=None, metavar="P",
                       help=f"{target_help} (default {target_default['target_halfwidth']:g})")
        p.add_argument("--max-seeds", type=int, default=None, metavar="N",
                       help=f"{seeds_help} (default {target_default['max_seeds']})")
    add_field(p, "--epochs", SWEEP_CONFIG, "epochs", type=positive_int, help="most epochs per run")
    add_field(p, "--patience", SWEEP_CONFIG, "patience", type=positive_int,
              help="stop a run after this many epochs without a validation gain above --min-delta",
              none="no early stopping")
    add_field(p, "--min-delta", SWEEP_CONFIG, "min_delta", type=float,
              help="validation accuracy gain (fraction) that counts for --patience")
    add_field(p, "--batch-size", SWEEP_CONFIG, "batch_size", type=int, help="images per step")
    add_field(p, "--lr", SWEEP_CONFIG, "lr", type=finite_float, help="peak learning rate")
    ablate_help = "switch these off for one model, comma-separated: augment,normalize"
    if ablate_default is None:
        add_field(p, "--ablate", SWEEP_CONFIG, "ablate", type=parse_csv, help=ablate_help)
    else:
        p.add_argument("--ablate", type=parse_csv, default=None,
                       help=f"{ablate_help}; 'none' for no ablation (default {','.join(ablate_default)})")
    add_field(p, "--ablate-family", SWEEP_CONFIG, "ablate_family", help="family of the ablation runs")
    add_field(p, "--ablate-budget", SWEEP_CONFIG, "ablate_budget", type=parse_count,
              help="budget of the ablation runs (none: the largest)")
    add_field(p, "--ablate-policy", SWEEP_CONFIG, "ablate_policy",
              help="scaling policy of the ablation runs (none: the first policy)")
    add_field(p, "--no-latency", SWEEP_CONFIG, "latency", switch=False, help="skip the CPU batch-1 latency column")
    p.add_argument("--set", type=parse_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrainConfig setting, e.g. --set label_smoothing=0.1 (JSON value), repeatable")
    add_executor_options(p)
    p.add_argument("--overwrite", action="store_true", help="discard a sweep with another config in --out")
    add_log_arguments(p, csv="each run folder, and the sweep's own in the sweep folder")


def add_executor_options(p) -> None:
    """Where the runs train: this machine (``--jobs``) or a Ray cluster (``--executor ray``); defaults are
    make_executor's and RayOptions'."""
    add_field(p, "--executor", MAKE_EXECUTOR, "kind", choices=library_constant("compress.study.executors:EXECUTORS"),
              help="local: this machine; ray: a Ray cluster (pip install \"compress[ray]\")")
    add_field(p, "--jobs", MAKE_EXECUTOR, "jobs", type=positive_int,
              help="local worker processes; CPU threads are divided between them")
    add_field(p, "--address", RAY_OPTIONS, "address", metavar="auto|HOST:PORT",
              none="RAY_ADDRESS when set, else a private Ray on this machine",
              help="with --executor ray: the cluster's head")
    add_field(p, "--cpus-per-run", RAY_OPTIONS, "cpus_per_run", type=finite_float, metavar="N",
              help="with --executor ray: CPU cores per run, i.e. per point with its seeds (fractions allowed)")
    add_field(p, "--gpus-per-run", RAY_OPTIONS, "gpus_per_run", type=finite_float, metavar="N",
              help="with --executor ray: GPUs per run (per point); 0.25 lets four points share a GPU")
    add_field(p, "--max-retries", RAY_OPTIONS, "max_retries", type=int, metavar="N",
              help="with --executor ray: times a run lost with its worker or node is started again")


def executor_from_args(args):
    """The executor the options name: ``make_executor(jobs, kind=..., ray=RayOptions(...))``."""
    from compress.study import RayOptions, make_executor

    kw = given(args, make_executor)
    ray = given(args, RayOptions)
    if kw.get("kind", "local") != "ray":
        if ray:
            flags = ", ".join("--" + k.replace("_", "-") for k in ray)
            raise ValueError(f"{flags}: only with --executor ray")
        return make_executor(**kw)
    if "jobs" in kw:
        raise ValueError("--jobs is for the local executor; on Ray set --cpus-per-run / --gpus-per-run")
    return make_executor(**kw, ray=RayOptions(**ray))


def report_failed(results: dict, out) -> int:
    """Print the runs that failed (to stderr); the exit status: 1 when any did, else 0."""
    import sys

    failed = results.get("failed") or []
    for f in failed:
        print(f"failed: {f['run_id']}: {f['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} runs failed (listed in {out}/results.json); rerun the same command to try them "
              "again", file=sys.stderr)
    return 1 if failed else 0


def config_from_args(args, *, ablate_default: tuple[str, ...] | None = None, target_default: dict | None = None):
    """The SweepConfig of the options given (the others keep SweepConfig's defaults, or the study's
    ``ablate_default`` and ``target_default``)."""
    from compress.study import SweepConfig

    settings = given(args, SweepConfig)
    if target_default is not None:
        for key in ("target_halfwidth", "max_seeds"):
            settings[key] = target_default[key] if getattr(args, key) is None else getattr(args, key)
    if ablate_default is not None:
        ablate = ablate_default if args.ablate is None else args.ablate
        settings["ablate"] = tuple(a for a in ablate if a != "none")
    if args.set:
        settings["train"] = dict(args.set)
    extra = model_arguments(args)
    if extra:   # the keyword arguments of the families from outside the registry
        from compress.models.sources import is_external

        families = settings.get("families", library_default(SweepConfig, "families"))
        outside = [f for f in families if is_external(f)]
        if not outside:
            raise ValueError("--model-args / --width-arg: apply to families from outside the registry "
                             "(PATH.py:NAME, torchvision:NAME, timm:NAME); use --set for training settings")
        settings["model_args"] = {f: extra for f in outside}
    return SweepConfig(**settings)


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help=SUMMARY,
        description="For each family, parameter budget and scaling policy, size the model with "
                    "compress.models.scaling, train its seeds together as one stacked model and record params, MACs, artifact bytes, accuracy, time and latency in "
                    "OUT/results.csv and OUT/results.json. Rerunning the same command resumes.")
    add_sweep_options(p)
    p.add_argument("--methods", type=parse_csv, default=None, metavar="scale,prune,prune-scratch",
                   help="also compare pruning a larger model and training the pruned architecture from scratch "
                        "with scaling, at the same total epochs (Liu et al. 2019; compress.study.pruning)")
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<data name>)")
    p.set_defaults(run=run)


def tracking(args) -> dict:
    """``run_sweep``'s ``loggers`` and ``log_dir`` from ``--log`` and ``--log-dir``."""
    from compress.track import make_loggers

    return {"loggers": args.log, **given(args, make_loggers)}


def run(args) -> int:
    from compress import _io
    from compress.study import default_folder, run_sweep

    config = config_from_args(args)
    executor = executor_from_args(args)
    out = args.out or default_folder(config.data, "sweeps")
    _io.check_output_folder(out, inputs=[config.data])   # an existing sweep folder is resumed
    if args.methods:
        from compress.study import load_results
        from compress.study.pruning import run_pruning_study

        doc = run_pruning_study(config, out, methods=args.methods, executor=executor, overwrite=args.overwrite,
                                **tracking(args))
        print(f"{len(doc['records'])} runs compared in {out}/pruning.json")
        results = load_results(out)
    else:
        results = run_sweep(config, out, executor=executor, overwrite=args.overwrite, **tracking(args))
    print(f"{len(results['records'])} runs in {out}/results.csv; next: compress report {out}")
    return report_failed(results, out)
