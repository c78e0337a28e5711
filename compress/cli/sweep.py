"""``compress sweep``: train families at matched parameter budgets over seeds; resumable."""

from __future__ import annotations

from compress.cli._common import parse_count


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _counts(text: str) -> list[int]:
    return [parse_count(t) for t in _csv(text)]


def add_sweep_options(p) -> None:
    """Options shared by ``compress sweep`` and ``compress study`` (defaults: SweepConfig's)."""
    p.add_argument("--data", default="default", help="PATH (FER2013 CSV, .npz, image folder) or 'default'")
    p.add_argument("--families", type=_csv, help="comma-separated families (default mobilenet_v1,cnn,mlp)")
    p.add_argument("--budgets", type=_counts, help="comma-separated parameter budgets, e.g. 5k,20k,80k,300k")
    p.add_argument("--seeds", type=int, help="seeds per point (default 2)")
    p.add_argument("--epochs", type=int, help="epochs per run (default 6)")
    p.add_argument("--batch-size", type=int, help="images per step (default 64)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-2)")
    p.add_argument("--ablate", type=_csv, help="switch these off for one model: augment,normalize")
    p.add_argument("--ablate-family", help="family of the ablation runs (default cnn)")
    p.add_argument("--ablate-budget", type=parse_count, help="budget of the ablation runs (default: the largest)")
    p.add_argument("--no-latency", action="store_true", help="skip the CPU batch-1 latency column")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra TrainConfig setting, e.g. --set label_smoothing=0.1 (repeatable)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes; CPU threads are divided between them")
    p.add_argument("--overwrite", action="store_true", help="discard a sweep with another config in --out")


def config_from_args(args, **defaults):
    import json

    from compress.sweep import SweepConfig

    train = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        try:
            train[key] = json.loads(value)
        except json.JSONDecodeError:
            train[key] = value
    given = dict(data=args.data, families=args.families, budgets=args.budgets, seeds=args.seeds,
                 epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, ablate=args.ablate,
                 ablate_family=args.ablate_family, ablate_budget=args.ablate_budget)
    settings = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if args.no_latency:
        settings["latency"] = False
    if train:
        settings["train"] = train
    return SweepConfig(**settings)


def make_executor(jobs: int):
    from compress.sweep import ProcessExecutor, SequentialExecutor

    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    return SequentialExecutor() if jobs == 1 else ProcessExecutor(jobs)


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="parameter-vs-accuracy sweep (families x budgets x seeds), resumable",
        description="For each family and parameter budget, size the model with compress.scaling, train it "
                    "for each seed and record params, MACs, artifact bytes, accuracy, time and latency in "
                    "OUT/results.csv and OUT/results.json. Rerunning the same command resumes.")
    add_sweep_options(p)
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<data name>)")
    p.set_defaults(run=run)


def default_out(data: str, root: str = "sweeps") -> str:
    from pathlib import Path

    return str(Path(root) / (Path(data).stem if data not in ("default",) else "default"))


def run(args) -> int:
    from compress.sweep import run_sweep

    config = config_from_args(args)
    out = args.out or default_out(config.data)
    results = run_sweep(config, out, executor=make_executor(args.jobs), overwrite=args.overwrite)
    print(f"{len(results['records'])} runs in {out}/results.csv; next: compress report {out}")
    return 0
