"""``compress evaluate RUN|FILE``: loss and accuracy of a trained run, an artifact or an ONNX file on labeled data.

    compress evaluate runs/cnn                          # the run's own data and split, from any folder
    compress evaluate runs/cnn --data imgs --test-data test_imgs   # other data (its hash is not checked)
    compress evaluate model.npz --data test.csv         # an artifact: its stored input shape and normalization
    compress evaluate model.onnx --data test.csv        # an ONNX file (onnxruntime), from its metadata
"""

from __future__ import annotations

import json
from pathlib import Path

from compress.cli._common import add_data_arguments, add_field

LOAD_RUN = "compress.train.runs:load_run"
SUMMARY = "accuracy of a run folder, artifact or ONNX file on a labeled dataset"


def register(sub) -> None:
    p = sub.add_parser("evaluate", help=SUMMARY,
                       description="Evaluate a run folder (from `compress train`), an artifact (.npz/.pt) or an ONNX "
                                   "file (from `compress export`). Without --data a run reloads its own data and "
                                   "split; a file needs --data and takes its input size and normalization from "
                                   "what it stores.")
    p.add_argument("run_dir", metavar="RUN|FILE", help="run folder, artifact (.npz/.pt) or ONNX file (.onnx)")
    add_data_arguments(p, default=None)  # optional: the run knows its own data
    p.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="split to evaluate (default: test if it is labeled, else val)")
    add_field(p, "--device", LOAD_RUN, "device", help="cpu, cuda, cuda:N or auto (an ONNX file runs on the CPU)")
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
    if Path(args.run_dir).is_file():
        return _evaluate_file(args, options.get("device"))
    result = load_run(args.run_dir, **options)
    if args.data is None:
        if args.test_data is not None or args.test_fraction is not None:
            raise ValueError("--test-data/--test-fraction go with --data (without it the run reloads its own data "
                             "and splits)")
        bundle = result.data()
    else:   # the run's split settings, unless given here
        kept = {k: v for k, v in result.data_options.items() if k in ("val_fraction", "seed", "test_fraction",
                                                                      "test_seed")}
        bundle = data_mod.load(args.data, input_size=tuple(result.info["data"]["input_size"]),
                               skip_bad_rows=args.skip_bad_rows, **(kept | given(args, data_mod.load)))
        report_skipped(bundle)
    if bundle.num_classes != len(result.class_names):
        raise ValueError(f"{args.data}: {bundle.num_classes} classes but the run has {len(result.class_names)}")
    return _report(args, "run", result.path, bundle, result.evaluate)


def _evaluate_file(args, device) -> int:
    """An artifact or ONNX file: data loaded at its input size, normalized as it stores."""
    from compress import data as data_mod
    from compress.cli._common import given, report_skipped
    from compress.export import load_model
    from compress.train import evaluate

    if args.data is None:
        raise ValueError(f"{args.run_dir}: a model file has no run to take data from; give --data SOURCE")
    model, info = load_model(args.run_dir)
    shape, normalizer = info.require_input()
    device = info.check_device(device)
    bundle = data_mod.load(args.data, input_size=(int(shape[1]), int(shape[2])), skip_bad_rows=args.skip_bad_rows,
                           **given(args, data_mod.load))
    report_skipped(bundle)
    info.check_data(bundle)
    model = model.to(device) if device is not None else model
    return _report(args, "model", info.path, bundle,
                   lambda split: evaluate(model, split, normalizer=normalizer, device=device))


def _report(args, kind: str, path, bundle, evaluate_split) -> int:
    """Evaluate the chosen labeled split of ``bundle`` with ``evaluate_split`` and print the line (or JSON)."""
    split = bundle.split(args.split)
    if not split.labeled:
        raise ValueError(f"{bundle.source}: the {bundle.split_name(split)} split is unlabeled; use `compress predict`")
    name = bundle.split_name(split)
    ev = evaluate_split(split)
    how = bundle.origin.get("test_split") if name == "test" else None
    if args.json:
        print(json.dumps({kind: str(path), "data": bundle.source, "split": name, "test_split": how, **ev}, indent=2))
    else:
        origin = {"held_out": ", held out", "test_data": f" from {bundle.options.get('test')}"}.get(how or "", "")
        print(f"{path} on {bundle.source} [{name}{origin}]: acc {ev['acc']:.4f}  loss {ev['loss']:.4f}  n {ev['n']}")
    return 0

