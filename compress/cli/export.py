"""``compress export RUN``: write a trained run as a compressed artifact, optionally the best one under a budget.

    compress export RUN --max-bytes 225000 --out model.npz     # most accurate candidate that fits
    compress export RUN --codec int8 --fold-bn --out model.pt  # one codec, no search
"""

from __future__ import annotations

import json

from compress.cli._common import parse_count


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run as a compressed artifact (.npz/.pt), within a byte budget",
                       description="Write a trained run folder as a self-describing artifact (load it with "
                                   "compress.artifact.load). With --max-bytes, try candidates from lossless to "
                                   "lossy, measure each file's bytes and validation accuracy, and write the "
                                   "most accurate one that fits.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (from `compress train`)")
    p.add_argument("--max-bytes", type=parse_count, default=None, metavar="N",
                   help="byte budget for the file (225000, 225k); file size as du --apparent-size counts it")
    p.add_argument("--codec", default=None,
                   help="without --max-bytes: fp32, fp16 (default), int8, int8-tensor, kmeans1..kmeans8")
    p.add_argument("--fold-bn", action="store_true", help="without --max-bytes: fold BatchNorm first")
    p.add_argument("--candidates", default=None, metavar="LIST",
                   help="with --max-bytes: comma-separated candidates, e.g. fp16,int8+fold,kmeans4+fold "
                        "(default: fp32,fp16,fp16+fold,int8+fold,kmeans8+fold..kmeans2+fold)")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="POINTS",
                   help="with --max-bytes: take the least lossy candidate within POINTS of the most accurate "
                        "(default 0)")
    p.add_argument("--format", choices=("npz", "pt"), default=None, help="container (default: from --out, npz)")
    p.add_argument("--out", default=None, help="artifact path (default RUN/model.npz)")
    p.add_argument("--onnx", default=None, metavar="PATH", help="also export the written model to ONNX")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from compress import artifact, budget
    from compress.train import evaluate, load_run

    if args.max_bytes is not None and (args.codec or args.fold_bn):
        raise ValueError("--codec/--fold-bn choose one codec; --max-bytes searches them (use --candidates)")
    if args.max_bytes is None and args.candidates:
        raise ValueError("--candidates needs --max-bytes")
    fmt = args.format or (Path(args.out).suffix.lstrip(".") if args.out else "npz")
    out = Path(args.out) if args.out else Path(args.run_dir) / f"model.{fmt}"
    src = load_run(args.run_dir)
    meta = {"normalizer": src.normalizer.to_dict(), "class_names": list(src.class_names),
            "data_source": src.data_source, "run": str(src.path)}
    val = src.data().val
    if args.max_bytes is not None:
        candidates = ([c.strip() for c in args.candidates.split(",") if c.strip()] if args.candidates
                      else budget.DEFAULT_CANDIDATES)
        try:
            result = budget.fit_bytes(src.model, val, args.max_bytes, path=out, format=args.format,
                                        candidates=candidates, transform=src.normalizer, meta=meta,
                                        tolerance_points=args.tolerance)
        except budget.BudgetError as exc:
            print(exc.result.table())
            raise
        summary = result.to_dict()
    else:
        codec = args.codec or "fp16"
        artifact.save(src.model, out, codec=codec, fold_bn=args.fold_bn, format=args.format, meta=meta)
        acc = evaluate(artifact.load(out), val, transform=src.normalizer)["acc"]
        fp32 = evaluate(src.model, val, transform=src.normalizer)["acc"]
        size = out.stat().st_size
        label = codec + ("+fold" if args.fold_bn else "")
        result = budget.BudgetResult([budget.BudgetRow(label, size, acc, 100 * (acc - fp32), True, True)],
                                       size, path=out, fp32_acc=fp32)
        summary = result.to_dict()
    summary["breakdown"] = artifact.breakdown(out)
    if args.onnx:
        from compress.latency import export_onnx

        b = src.build_args or {}
        shape = (b.get("in_chans", 1), b.get("input_size", 48), b.get("input_size", 48))
        export_onnx(artifact.load(out), args.onnx, shape)
        summary["onnx"] = str(args.onnx)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(result.table())
    b = summary["breakdown"]
    print(f"wrote {out}: {b['size_bytes']:,} bytes = weights {b['weights_bytes']:,} + scales/codebooks "
          f"{b['scales_bytes']:,} + spec/manifest {b['manifest_bytes']:,} + container {b['overhead_bytes']:,}")
    if args.onnx:
        print(f"wrote {args.onnx}")
    return 0
