"""``compress explain RUN``: confusion matrix, saliency maps, filters and activations of a trained run.

Writes ``confusion.png``, ``saliency.png``, ``filters.png``, ``activations.png``, ``explain.json`` and
``explain.md`` (a Markdown section with relative image links that ``compress report`` can include) into
``--out`` (default ``RUN/explain``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.cli._common import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "explain", help="confusion matrix, saliency maps, filters and activations of a trained run",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # dest run_dir: `args.run` is the command's callable (set_defaults below).
    p.add_argument("run_dir", metavar="RUN", help="run folder written by `compress train`")
    p.add_argument("--data", metavar="PATH|default", default=None,
                   help="data to explain on (a data source as `compress train` takes it); "
                        "default: the data the run was trained on, same split")
    p.add_argument("--split", choices=("test", "val", "train"), default=None,
                   help="split to use (default: test when the data has one, else val)")
    p.add_argument("--layer", metavar="NAME", default=None,
                   help="layer whose filters are visualized, as in model.named_modules() "
                        "(default: the last Conv2d; for an MLP the last hidden Linear)")
    p.add_argument("--activation-layer", metavar="NAME", default=None,
                   help="layer whose feature maps are shown (default: --layer if given, else the first Conv2d)")
    p.add_argument("--filters", metavar="N", type=positive_int, default=16, help="filters to visualize (default 16)")
    p.add_argument("--steps", metavar="N", type=positive_int, default=100,
                   help="gradient-ascent steps per filter (default 100)")
    p.add_argument("--method", choices=("gradient", "smoothgrad"), default="gradient",
                   help="saliency method (default gradient)")
    p.add_argument("--per-class", metavar="N", type=positive_int, default=1,
                   help="saliency examples per class, correct and wrong each (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for SmoothGrad noise, re-initialization, filters")
    p.add_argument("--threads", metavar="N", type=positive_int, default=None,
                   help="CPU threads for torch during the command (default: torch's own choice)")
    p.add_argument("--out", metavar="DIR", default=None, help="output folder (default RUN/explain)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from compress import data as cdata
    from compress import explain, train

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _explain(args, cdata, explain, train)
    finally:
        torch.set_num_threads(threads)


def _explain(args: argparse.Namespace, cdata, explain, train) -> int:
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    loaded = train.load_run(run_dir)
    bundle = cdata.load(args.data) if args.data else loaded.data()
    config = explain.ExplainConfig(split=args.split, layer=args.layer, activation_layer=args.activation_layer,
                                   filters=args.filters, method=args.method, per_class=args.per_class, seed=args.seed,
                                   filter=explain.FilterConfig(steps=args.steps))
    out = Path(args.out) if args.out else run_dir / "explain"
    # The run's normalizer, not the bundle's: inputs must be prepared exactly as in training (a run may use raw
    # pixels, and --data may be another data set whose statistics differ).
    summary = explain.explain_model(loaded.model, bundle, out, config=config, normalize=loaded.normalizer,
                                    title=run_dir.resolve().name)
    c = summary["confusion"]
    print(f"{c['total']} images, accuracy {c['accuracy']:.2%}; "
          f"randomization check: rank correlation {summary['saliency']['randomization_rank_correlation_mean']:.3f}")
    print(f"wrote {out / 'explain.md'} and figures")
    return 0
