"""``compress explain RUN``: confusion matrix, saliency maps, filters and activations of a trained run.

Writes ``confusion.png``, ``saliency.png``, ``filters.png``, ``activations.png``, ``explain.json`` and
``explain.md`` (a Markdown section with relative image links that ``compress report`` can include) into
``--out`` (default ``RUN/explain``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.cli._common import add_data_arguments, add_field, given, positive_int

EXPLAIN_CONFIG = "compress.explain.section:ExplainConfig"
FILTER_CONFIG = "compress.explain.filters:FilterConfig"
SUMMARY = "confusion matrix, saliency maps, filters and activations of a trained run"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help=SUMMARY,
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # dest run_dir: `args.run` is the command's callable (set_defaults below).
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `compress train`")
    add_data_arguments(p, default=None)   # default: the data the run was trained on (checked), same split
    add_field(p, "--split", EXPLAIN_CONFIG, "split", choices=("test", "val", "train"),
              help="split to use", none="test when the data has one, else val")
    add_field(p, "--layer", EXPLAIN_CONFIG, "layer", metavar="NAME",
              help="layer whose filters are visualized, as in model.named_modules()",
              none="the last Conv2d; for an MLP the last hidden Linear")
    add_field(p, "--activation-layer", EXPLAIN_CONFIG, "activation_layer", metavar="NAME",
              help="layer whose feature maps are shown", none="--layer if given, else the first Conv2d")
    add_field(p, "--filters", EXPLAIN_CONFIG, "filters", metavar="N", type=positive_int, help="filters to visualize")
    add_field(p, "--steps", FILTER_CONFIG, "steps", metavar="N", type=positive_int,
              help="gradient-ascent steps per filter")
    add_field(p, "--method", EXPLAIN_CONFIG, "method", choices=("gradient", "smoothgrad"), help="saliency method")
    add_field(p, "--per-class", EXPLAIN_CONFIG, "per_class", metavar="N", type=positive_int,
              help="saliency examples per class, correct and wrong each")
    add_field(p, "--seed", EXPLAIN_CONFIG, "seed", type=int,
              help="seed for SmoothGrad noise, re-initialization, filters")
    p.add_argument("--threads", metavar="N", type=positive_int, default=None,
                   help="CPU threads for torch during the command (default: torch's own choice)")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default RUN/explain)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compress import _io
    from compress import data as cdata
    from compress.cli._common import report_skipped
    from compress.device import torch_threads
    from compress.explain import ExplainConfig, FilterConfig, explain_model
    from compress.train import load_run

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    config = ExplainConfig(**given(args, ExplainConfig), filter=FilterConfig(**given(args, FilterConfig)))
    out = Path(args.out) if args.out else run_dir / "explain"
    data_files = [f for f in (args.data, args.test_data) if f]
    _io.check_output_folder(out, inputs=[run_dir, *data_files])   # rewritten if it exists
    if not args.data and (args.test_data is not None or args.test_fraction is not None):
        raise ValueError("--test-data/--test-fraction go with --data (without it the run reloads its own data "
                         "and splits)")
    with torch_threads(args.threads):
        loaded = load_run(run_dir)
        if args.data:
            kept = {k: v for k, v in loaded.data_options.items() if k in ("val_fraction", "seed", "test_fraction",
                                                                          "test_seed")}
            bundle = cdata.load(args.data, input_size=tuple(loaded.info["data"]["input_size"]),
                                skip_bad_rows=args.skip_bad_rows, **(kept | given(args, cdata.load)))
            report_skipped(bundle)
        else:
            bundle = loaded.data()   # refused, in one line, when its hash changed since training
        # The run's normalizer, not the bundle's: inputs must be prepared exactly as in training (a run may use
        # raw pixels, and --data may be another data set whose statistics differ).
        summary = explain_model(loaded.model, bundle, out, config=config, normalizer=loaded.normalizer,
                                title=run_dir.resolve().name)
    c = summary["confusion"]
    split = f" of the {summary['split']} split" if summary.get("split") else ""
    print(f"{c['total']} images{split}, accuracy {c['accuracy']:.2%}; "
          f"randomization check: rank correlation {summary['saliency']['randomization_rank_correlation_mean']:.3f}")
    print(f"wrote {out / 'explain.md'} and figures")
    return 0
