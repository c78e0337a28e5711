"""``compress export RUN``: write a trained run as a compressed artifact, optionally the best one under a budget.

    compress export RUN --max-bytes 225000 --out model.npz     # most accurate candidate that fits
    compress export RUN --codec int8 --fold-bn --out model.pt  # one codec, no search
    compress export RUN --codec int8 --fold-bn --onnx model.onnx --int8   # and an int8 ONNX file of it
"""

from __future__ import annotations

import json

from compress.cli._common import add_field, finite_float, given, parse_count, parse_csv


def register(sub) -> None:
    from compress.export import export_run
    from compress.export.budget import DEFAULT_CANDIDATES

    p = sub.add_parser("export", help="write a run as a compressed artifact (.npz/.pt), within a byte budget",
                       description="Write a trained run folder as a self-describing artifact (load it with "
                                   "compress.export.load). With --max-bytes, try candidates from lossless to "
                                   "lossy, measure each file's bytes and validation accuracy, and write the "
                                   "most accurate one that fits.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (from `compress train`)")
    add_field(p, "--max-bytes", export_run, "max_bytes", type=parse_count, metavar="N",
              help="byte budget for the file (225000, 225k); file size as du --apparent-size counts it")
    add_field(p, "--codec", export_run, "codec",
              help="without --max-bytes: fp32, fp16, int8, int8-tensor, kmeans1..kmeans8", none="fp16")
    add_field(p, "--fold-bn", export_run, "fold_bn", switch=True, help="without --max-bytes: fold BatchNorm first")
    add_field(p, "--candidates", export_run, "candidates", type=parse_csv, metavar="LIST",
              help="with --max-bytes: comma-separated candidates, e.g. fp16,int8+fold,kmeans4+fold",
              none=",".join(DEFAULT_CANDIDATES))
    add_field(p, "--tolerance", export_run, "tolerance_points", type=finite_float, metavar="POINTS",
              help="with --max-bytes: take the least lossy candidate within POINTS of the most accurate")
    add_field(p, "--format", export_run, "format", choices=("npz", "pt"), help="container", none="from --out, else npz")
    add_field(p, "--out", export_run, "out", help="artifact path", none="RUN/model.npz")
    add_field(p, "--onnx", export_run, "onnx", metavar="PATH", help="also export the written model to ONNX")
    add_field(p, "--overwrite", export_run, "overwrite", switch=True, help="replace an existing --out file")
    add_field(p, "--int8", export_run, "int8", switch=True,
              help="with --onnx and an int8 codec: the ONNX file runs the stored int8 weights (QDQ), checked first")
    add_field(p, "--calibration", export_run, "calibration", choices=("minmax", "percentile"),
              help="with --int8: how activation ranges are taken from training images")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.export import BudgetError, export_run

    try:
        export = export_run(args.run_dir, **given(args, export_run))
    except BudgetError as exc:
        print(exc.result.table())
        raise
    print(json.dumps(export.to_dict(), indent=2) if args.json else export.summary())
    return 0
