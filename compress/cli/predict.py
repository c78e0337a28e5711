"""``compress predict RUN --data test.csv --out submission.csv``: write ``id,label`` predictions."""

from __future__ import annotations

from compress.cli._common import add_data_arguments, add_field


def register(sub) -> None:
    from compress.train import load_run

    p = sub.add_parser("predict", help="predict labels with a run folder; writes id,label CSV",
                       description="Predict with a run folder. An unlabeled `id,feature` CSV keeps its ids; "
                                   "other sources number the chosen split's images from 0.")
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    add_data_arguments(p, default=None, required=True)
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="split of the source to predict (default test)")
    p.add_argument("--out", required=True, help="CSV file to write (id,label); never an input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--names", action="store_true", help="write class names instead of class indices")
    add_field(p, "--device", load_run, "device", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress import _io
    from compress import data as data_mod
    from compress.cli._common import given, report_skipped
    from compress.device import resolve_device
    from compress.train import load_run

    _io.check_output(args.out, inputs=_inputs(args.run_dir, args.data), overwrite=args.overwrite)
    options = given(args, load_run)
    if "device" in options:
        options["device"] = resolve_device(options["device"])
    result = load_run(args.run_dir, **options)
    bundle = data_mod.load(args.data, input_size=tuple(result.info["data"]["input_size"]),
                           skip_bad_rows=args.skip_bad_rows)
    report_skipped(bundle)
    split = bundle.split(args.split)
    if split.x.shape[1] != result.info["data"]["in_chans"]:
        raise ValueError(f"{bundle.source}: {split.x.shape[1]} channels but the run expects "
                         f"{result.info['data']['in_chans']}")
    labels = result.predict(split.x).tolist()
    ids = split.ids if split.ids is not None else [str(i) for i in range(len(labels))]
    names = result.class_names
    rows = ["id,label"] + [f"{i},{names[k] if args.names else k}" for i, k in zip(ids, labels)]
    _io.write_text(args.out, "\n".join(rows) + "\n")
    print(f"wrote {len(labels)} predictions to {args.out}")
    return 0


def _inputs(run_dir: str, data: str) -> list:
    """Every file the command reads: the data source and the run folder's files."""
    from pathlib import Path

    run = Path(run_dir)
    return [data, *(run.iterdir() if run.is_dir() else ())]
