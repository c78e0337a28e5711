"""``compress fit-budget``: the most accurate model of a family whose artifact fits N bytes.

    compress fit-budget --family mobilenet_v1 --max-bytes 225000 --data default --epochs 10 --out budget/
"""

from __future__ import annotations

import json

from compress.cli._common import parse_count


def register(sub) -> None:
    p = sub.add_parser("fit-budget", help="search width x codec for the most accurate model within N bytes",
                       description="For each codec, size FAMILY to the widest model whose artifact fits "
                                   "--max-bytes, train it briefly (optionally distilled from --teacher), write it "
                                   "through the codec and measure bytes on disk and validation accuracy. Writes "
                                   "the winner (OUT/model.npz), OUT/table.json, OUT/table.csv and OUT/runs/.")
    p.add_argument("--family", required=True, help="registered model name, e.g. mobilenet_v1")
    p.add_argument("--max-bytes", type=parse_count, required=True, metavar="N", help="byte budget (225000, 225k)")
    p.add_argument("--data", required=True, help="dataset: CSV, .npz, image folder, 'default' or 'synthetic'")
    p.add_argument("--codecs", default=None, metavar="LIST",
                   help="comma-separated candidates (default fp16+fold,int8+fold,kmeans6+fold,kmeans4+fold)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per candidate (default 5)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (TrainConfig default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", default=None, metavar="RUN", help="run folder to distill from")
    p.add_argument("--format", choices=("npz", "pt"), default="npz")
    p.add_argument("--model-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="family option for models.create (JSON value), repeatable")
    p.add_argument("--out", default="fit_budget", help="output folder (default ./fit_budget)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(run=run)


def _model_opts(items: list[str]) -> dict:
    opts = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--model-opt {item!r} must look like KEY=VALUE")
        try:
            opts[key] = json.loads(value)
        except json.JSONDecodeError:
            opts[key] = value
    return opts


def run(args) -> int:
    import sys
    from dataclasses import asdict

    from compress import budget
    from compress.train import TrainConfig

    settings = {"epochs": args.epochs, "seed": args.seed}
    if args.lr is not None:
        settings["lr"] = args.lr
    config = TrainConfig(**settings)
    codecs = ([c.strip() for c in args.codecs.split(",") if c.strip()] if args.codecs
              else budget.DEFAULT_SEARCH_CODECS)
    for c in codecs:
        budget.parse_candidate(c)  # fail on a typo before any training
    best, rows = budget.fit_budget(args.family, args.max_bytes, args.data, codecs=codecs, config=config,
                                     teacher=args.teacher, out=args.out, format=args.format,
                                     progress=False if args.quiet else None,
                                     log=None if args.quiet else lambda line: print(line, file=sys.stderr),
                                     **_model_opts(args.model_opt))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"{'candidate':<15} {'width':>6} {'params':>9} {'bytes':>9} {'fp32 acc':>9} {'val acc':>8}  fits")
    for r in rows:
        if r.size_bytes is None:
            print(f"  {r.candidate:<13} {'-':>6} {'-':>9} {'-':>9} {'-':>9} {'-':>8}  no ({r.note.split(':')[0]})")
            continue
        print(f"{('* ' if r.chosen else '  ') + r.candidate:<15} {r.width_mult:6.3f} {r.param_count:>9,} "
              f"{r.size_bytes:>9,} {100 * r.val_acc_fp32:8.2f}% {100 * r.val_acc:7.2f}%  {'yes' if r.fits else 'no'}")
    print(f"wrote {args.out}/model.{args.format} ({best.candidate}, {best.size_bytes:,} bytes), "
          f"{args.out}/table.json, {args.out}/table.csv")
    return 0
