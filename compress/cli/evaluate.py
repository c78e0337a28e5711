"""``compress evaluate RUN``: loss and accuracy of a trained run on its own data or another labeled source."""

from __future__ import annotations

import json

from compress.cli._common import add_data_arguments, add_field


def register(sub) -> None:
    from compress.train import load_run

    p = sub.add_parser("evaluate", help="accuracy of a run folder on a labeled dataset",
                       description="Evaluate a run folder (from `compress train`). Without --data it reloads "
                                   "the run's own data and split.")
    p.add_argument("run_dir", metavar="RUN", help="run folder")
    add_data_arguments(p, default=None)  # optional: the run knows its own data
    p.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="split to evaluate (default: test if it is labeled, else val)")
    add_field(p, "--device", load_run, "device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress import data as data_mod
    from compress.cli._common import given, report_skipped
    from compress.device import resolve_device
    from compress.train import load_run

    options = given(args, load_run)
    if "device" in options:
        options["device"] = resolve_device(options["device"])
    result = load_run(args.run_dir, **options)
    if args.data is None:
        bundle = result.data()
    else:
        bundle = data_mod.load(args.data, input_size=tuple(result.info["data"]["input_size"]),
                               skip_bad_rows=args.skip_bad_rows, **{k: v for k, v in result.data_options.items()
                                                                    if k in ("val_fraction", "seed")})
        report_skipped(bundle)
    if bundle.num_classes != len(result.class_names):
        raise ValueError(f"{args.data}: {bundle.num_classes} classes but the run has {len(result.class_names)}")
    split = bundle.split(args.split)
    if not split.labeled:
        raise ValueError(f"{bundle.source}: the {bundle.split_name(split)} split is unlabeled; use `compress predict`")
    name = bundle.split_name(split)
    ev = result.evaluate(split)
    if args.json:
        print(json.dumps({"run": str(result.path), "data": bundle.source, "split": name, **ev}, indent=2))
    else:
        print(f"{result.path} on {bundle.source} [{name}]: acc {ev['acc']:.4f}  loss {ev['loss']:.4f}  n {ev['n']}")
    return 0
