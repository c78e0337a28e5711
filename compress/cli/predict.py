"""``compress predict RUN|FILE --data test.csv --out submission.csv``: write ``id,label`` predictions.

A run folder, an artifact (.npz/.pt) or an ONNX file: a file's images are loaded at its stored input size and
normalized as it stores (see ``compress export``)."""

from __future__ import annotations

from pathlib import Path

from compress.cli._common import add_data_arguments, add_field

LOAD_RUN = "compress.train.runs:load_run"
SUMMARY = "predict labels with a run folder, artifact or ONNX file; writes id,label CSV"


def register(sub) -> None:
    p = sub.add_parser("predict", help=SUMMARY,
                       description="Predict with a run folder, an artifact (.npz/.pt) or an ONNX file. An unlabeled "
                                   "`id,feature` CSV keeps its ids; other sources number the chosen split's images "
                                   "from 0.")
    p.add_argument("run_dir", metavar="RUN|FILE", help="run folder, artifact (.npz/.pt) or ONNX file (.onnx)")
    add_data_arguments(p, default=None, required=True)
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="split of the source to predict (default test)")
    p.add_argument("--out", required=True, help="CSV file to write (id,label); never an input")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--names", action="store_true", help="write class names instead of class indices")
    add_field(p, "--device", LOAD_RUN, "device", help="cpu, cuda, cuda:N or auto (an ONNX file runs on the CPU)")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress import _io
    from compress import data as data_mod
    from compress.cli._common import given, report_skipped
    from compress.device import resolve_device
    from compress.train import load_run

    _io.check_output(args.out, inputs=_inputs(args.run_dir, args.data, args.test_data), overwrite=args.overwrite)
    options = given(args, load_run)
    if "device" in options:
        options["device"] = resolve_device(options["device"])
    if Path(args.run_dir).is_file():
        labels, ids, names = _predict_file(args, options.get("device"))
    else:
        result = load_run(args.run_dir, **options)
        bundle = data_mod.load(args.data, input_size=tuple(result.info["data"]["input_size"]),
                               skip_bad_rows=args.skip_bad_rows, **given(args, data_mod.load))
        report_skipped(bundle)
        split = bundle.split(args.split)
        if split.x.shape[1] != result.info["data"]["in_chans"]:
            raise ValueError(f"{bundle.source}: {split.x.shape[1]} channels but the run expects "
                             f"{result.info['data']['in_chans']}")
        labels, ids, names = result.predict(split.x).tolist(), split.ids, result.class_names
    ids = ids if ids is not None else [str(i) for i in range(len(labels))]
    if args.names and names is None:
        raise ValueError(f"{args.run_dir}: stores no class names; drop --names to write class indices")
    rows = ["id,label"] + [f"{i},{names[k] if args.names and names is not None else k}" for i, k in zip(ids, labels)]
    _io.write_text(args.out, "\n".join(rows) + "\n")
    print(f"wrote {len(labels)} predictions to {args.out}")
    return 0


def _predict_file(args, device) -> tuple[list[int], list[str] | None, tuple[str, ...] | None]:
    """``(labels, ids, class names)`` of an artifact or ONNX file on the chosen split."""
    from compress import data as data_mod
    from compress.cli._common import given, report_skipped
    from compress.export import load_model
    from compress.train import predict

    model, info = load_model(args.run_dir)
    shape, normalizer = info.require_input()
    device = info.check_device(device)
    if args.names and info.class_names is None:
        raise ValueError(f"{info.path}: stores no class names; drop --names to write class indices")
    bundle = data_mod.load(args.data, input_size=(int(shape[1]), int(shape[2])), skip_bad_rows=args.skip_bad_rows,
                           **given(args, data_mod.load))
    report_skipped(bundle)
    split = bundle.split(args.split)
    if split.x.shape[1] != shape[0]:
        raise ValueError(f"{bundle.source}: {split.x.shape[1]} channels but {info.path.name} takes {shape[0]}")
    labels = predict(model.to(device) if device is not None else model, split.x, normalizer, device=device)
    return labels.tolist(), split.ids, info.class_names


def _inputs(run_dir: str, data: str, test_data: str | None = None) -> list:
    """Every file the command reads: the data source (and test data) and the run folder's files (or the model
    file)."""
    run = Path(run_dir)
    return [data, *([test_data] if test_data else []), *(run.iterdir() if run.is_dir() else [run])]
