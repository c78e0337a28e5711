"""``compress fit-budget``: the most accurate model of a family whose artifact fits N bytes.

    compress fit-budget --family mobilenet_v1 --max-bytes 225000 --data default --epochs 10 --out budget/
    compress fit-budget --family mobilenet_v1 --max-bytes 225000 --data default --codecs int8+fold,deep8x
"""

from __future__ import annotations

import json

from compress.cli._common import (MODEL_HELP, TRAIN_CONFIG, add_field, add_model_arguments, finite_float, given,
                                  library_constant, model_arguments, parse_count, parse_csv, positive_int,
                                  split_warnings)

TRAIN_TO_BUDGET = "compress.export.family:train_to_budget"
SUMMARY = "search width x codec for the most accurate model within N bytes"


def register(sub) -> None:
    p = sub.add_parser("fit-budget", help=SUMMARY,
                       description="For each codec, size FAMILY to the widest model whose artifact fits "
                                   "--max-bytes, train it briefly (optionally distilled from --teacher), write it "
                                   "through the codec and measure bytes on disk and validation accuracy. Writes "
                                   "the winner (OUT/model.npz), OUT/table.json, OUT/table.csv and OUT/runs/.")
    p.add_argument("--family", "--model", dest="family", required=True, metavar="MODEL",
                   help=MODEL_HELP + "; sized by its width (a model of yours, torchvision's or timm's needs "
                                     "--width-arg)")
    p.add_argument("--max-bytes", type=parse_count, required=True, metavar="N", help="byte budget (225000, 225k)")
    p.add_argument("--data", required=True, help="dataset: CSV, .npz, image folder, 'default' or 'synthetic'")
    add_field(p, "--codecs", TRAIN_TO_BUDGET, "codecs", type=parse_csv, metavar="LIST",
              help="comma-separated candidates: whole-model codecs (int8+fold, kmeans4+fold...) or deepNx (a model N "
                   "times the budget in int8, trained, then pruned + mixed precision + fine-tuned into it)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs per candidate "
                        f"(default {library_constant('compress.export.family:DEFAULT_SEARCH_EPOCHS')})")
    add_field(p, "--lr", TRAIN_CONFIG, "lr", type=finite_float, help="peak learning rate")
    add_field(p, "--seed", TRAIN_CONFIG, "seed", type=int)
    add_field(p, "--teacher", TRAIN_TO_BUDGET, "teacher", metavar="RUN", help="run folder to distill from")
    add_field(p, "--format", TRAIN_TO_BUDGET, "format", choices=("npz", "pt"))
    add_field(p, "--tolerance", TRAIN_TO_BUDGET, "tolerance_points", type=finite_float, metavar="POINTS",
              help="a later codec in --codecs is taken only when its model is better than an earlier one's by more "
                   "than POINTS on the validation split by a paired test (McNemar's exact test, 5%%; a difference "
                   "of a few images is a tie); a tolerance the split cannot resolve is warned about")
    add_model_arguments(p, flag=None)
    p.add_argument("--out", default="fit_budget", help="output folder (default ./fit_budget)")
    p.add_argument("--overwrite", action="store_true", help="replace the results in an existing, non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import sys

    from compress.export.family import DEFAULT_SEARCH_EPOCHS, train_to_budget
    from compress.train import TrainConfig

    from compress import _io

    _io.check_output_folder(args.out, inputs=[args.data, *([args.teacher] if getattr(args, "teacher", None) else [])],
                            overwrite=True if args.overwrite else (False if _holds_files(args.out) else None))
    epochs = args.epochs if args.epochs is not None else DEFAULT_SEARCH_EPOCHS
    config = TrainConfig(epochs=epochs, **given(args, TrainConfig))
    options = given(args, train_to_budget)
    with split_warnings("fit-budget"):
        search = train_to_budget(args.family, args.data, max_bytes=args.max_bytes, config=config, out=args.out,
                                 progress=False if args.quiet else None,
                                 log=None if args.quiet else lambda line: print(line, file=sys.stderr),
                                 **options, **model_arguments(args))
    if args.json:
        print(json.dumps(search.to_dict()["rows"], indent=2))
        return 0
    print(search.table())
    best = search.best
    assert best is not None   # train_to_budget raises BudgetError when nothing fits
    print(f"wrote {args.out}/model.{search.format} ({best.candidate}, {best.size_bytes:,} bytes), "
          f"{args.out}/table.json, {args.out}/table.csv")
    return 0


def _holds_files(folder: str) -> bool:
    from pathlib import Path

    return Path(folder).is_dir() and any(Path(folder).iterdir())
