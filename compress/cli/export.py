"""``compress export RUN``: write a trained run as a compressed artifact, optionally the best one under a budget.

    compress export RUN --max-bytes 225000 --out model.npz     # most accurate candidate that fits
    compress export RUN --codec int8 --fold-bn --out model.pt  # one codec, no search
    compress export RUN --codec int8 --fold-bn --onnx model.onnx --int8   # and an int8 ONNX file of it
    compress export RUN --max-bytes 225000 --deep on           # also prune + mixed precision + fine-tune
    compress export RUN --onnx model.onnx --onnx-normalize     # an ONNX file that takes pixels in [0, 1]

The files keep the run's input shape, normalization and class names (ONNX: in its metadata), so
`compress evaluate FILE --data SOURCE` and `compress predict FILE ...` need nothing else.
"""

from __future__ import annotations

import json

from compress.cli._common import add_field, library_constant, finite_float, given, parse_count, parse_csv, split_warnings

EXPORT_RUN = "compress.export.runs:export_run"
DEEP_CONFIG = "compress.quant.deep:DeepConfig"
SUMMARY = "write a run as a compressed artifact (.npz/.pt), within a byte budget"


def register(sub) -> None:
    p = sub.add_parser("export", help=SUMMARY,
                       description="Write a trained run folder as a self-describing artifact (load it with "
                                   "compress.export.load). With --max-bytes, try candidates from lossless to "
                                   "lossy, measure each file's bytes and validation accuracy, and write the "
                                   "most accurate one that fits.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (from `compress train`)")
    add_field(p, "--max-bytes", EXPORT_RUN, "max_bytes", type=parse_count, metavar="N",
              help="byte budget for the file (225000, 225k); file size as du --apparent-size counts it")
    add_field(p, "--codec", EXPORT_RUN, "codec",
              help="without --max-bytes: fp32, fp16, int8, int8-tensor, kmeans1..kmeans8", none="fp16")
    add_field(p, "--fold-bn", EXPORT_RUN, "fold_bn", switch=True, help="without --max-bytes: fold BatchNorm first")
    add_field(p, "--candidates", EXPORT_RUN, "candidates", type=parse_csv, metavar="LIST",
              help="with --max-bytes: comma-separated candidates, e.g. fp16,int8+fold,kmeans4+fold",
              none=",".join(library_constant("compress.export.choice:DEFAULT_CANDIDATES")))
    add_field(p, "--tolerance", EXPORT_RUN, "tolerance_points", type=finite_float, metavar="POINTS",
              help="with --max-bytes: a lossier candidate is taken only when it is better than a less lossy one by "
                   "more than POINTS on the validation split by a paired test (McNemar's exact test, 5%%; a "
                   "difference of a few images is a tie); a tolerance the split cannot resolve is warned about")
    add_field(p, "--format", EXPORT_RUN, "format", choices=("npz", "pt"), help="container", none="from --out, else npz")
    add_field(p, "--out", EXPORT_RUN, "out", help="artifact path", none="RUN/model.npz")
    add_field(p, "--onnx", EXPORT_RUN, "onnx", metavar="PATH",
              help="also export the written model to ONNX (input shape, normalization and class names in its metadata)")
    add_field(p, "--onnx-normalize", EXPORT_RUN, "onnx_normalize", switch=True,
              help="with --onnx: the ONNX graph starts with the run's normalization, so it takes images scaled to "
                   "[0, 1]")
    add_field(p, "--overwrite", EXPORT_RUN, "overwrite", switch=True, help="replace an existing --out file")
    add_field(p, "--int8", EXPORT_RUN, "int8", switch=True,
              help="with --onnx and an int8 codec: the ONNX file runs the stored int8 weights (QDQ), checked first")
    add_field(p, "--calibration", EXPORT_RUN, "calibration",
              choices=library_constant("compress.int8.calibrate:CALIBRATION_METHODS"),
              help="with --int8: how activation ranges are taken from training images")
    add_field(p, "--int8-activations", EXPORT_RUN, "int8_activations",
              choices=library_constant("compress.int8.config:ACTIVATION_TYPES"),
              help="with --int8: activations with negative values in uint8 (asymmetric) or int8 (symmetric, "
                   "zero point 0: what OpenVINO runs fastest)")
    g = p.add_argument_group("deep compression (compress.quant.DeepConfig): per-layer candidates 'mixed' and 'deep'")
    add_field(g, "--deep", EXPORT_RUN, "deep", choices=library_constant("compress.export.runs:DEEP_MODES"),
              help="with --max-bytes: add the candidates mixed (per-layer codecs) and deep (pruned, mixed, "
                   "fine-tuned on the run's data, entropy coded): on, off, or auto = when no whole-model codec "
                   "fits within --deep-points of fp32")
    add_field(g, "--deep-points", EXPORT_RUN, "deep_points", type=finite_float, metavar="POINTS",
              help="accuracy loss (points) that makes --deep auto try them")
    add_field(g, "--sparsity", DEEP_CONFIG, "sparsity", type=finite_float, help="fraction of weights to prune",
              none="the least the budget needs")
    add_field(g, "--prune-scope", DEEP_CONFIG, "prune_scope", choices=("global", "layer"))
    add_field(g, "--prune-epochs", DEEP_CONFIG, "prune_epochs", type=finite_float, help="AGP fine-tuning passes")
    add_field(g, "--finetune-epochs", DEEP_CONFIG, "finetune_epochs", type=finite_float,
              help="quantization-aware fine-tuning passes")
    add_field(g, "--layer-codecs", DEEP_CONFIG, "codecs", type=lambda t: tuple(parse_csv(t)), metavar="LIST",
              help="per-layer choices, e.g. fp16,int8,int4,kmeans3")
    add_field(g, "--threads", DEEP_CONFIG, "threads", type=int, help="CPU threads for torch while compressing",
              none="torch's default")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys

    from compress.export import BudgetError, export_run
    from compress.quant.deep import DeepConfig

    deep_config = DeepConfig(**given(args, DeepConfig))
    log = None if args.quiet or args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        with split_warnings("export"):
            export = export_run(args.run_dir, **given(args, export_run), deep_config=deep_config, log=log)
    except BudgetError as exc:
        print(exc.result.table())
        raise
    print(json.dumps(export.to_dict(), indent=2) if args.json else export.summary())
    return 0
