"""``compress scale``: size a family to a budget, or match another model's parameter count."""

from __future__ import annotations

import json

from compress.cli._common import parse_count, parse_shape


def register(sub) -> None:
    p = sub.add_parser(
        "scale", help="find the widest model of a family within a budget, or matching another's size",
        description="Largest width multiplier of FAMILY within --max-params/--max-macs/--max-bytes "
                    "(all given budgets hold), or, with --match, the width whose parameter count is within "
                    "--tolerance of MODEL at --match-width.")
    p.add_argument("family", help="a registered model name (see `compress models`)")
    p.add_argument("--max-params", type=parse_count, help="parameter budget, e.g. 100k")
    p.add_argument("--max-macs", type=parse_count, help="multiply-accumulate budget at batch 1, e.g. 5M")
    p.add_argument("--max-bytes", type=parse_count, help="bytes of the serialized state_dict, e.g. 225000")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="dtype for --max-bytes")
    p.add_argument("--format", dest="fmt", default="pt", choices=["pt", "npz"], help="file format for --max-bytes")
    p.add_argument("--match", metavar="MODEL", help="match the parameter count of this registered model")
    p.add_argument("--match-width", type=float, default=1.0, help="width multiplier of --match (default 1.0)")
    p.add_argument("--tolerance", type=float, default=0.05, help="relative tolerance of --match (default 0.05)")
    p.add_argument("--input", type=parse_shape, default=(1, 48, 48), metavar="CxHxW",
                   help="input C x H x W (default 1x48x48; H = W)")
    p.add_argument("--num-classes", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress import models, scaling

    if len(args.input) != 3 or args.input[1] != args.input[2]:
        raise ValueError(f"--input {'x'.join(map(str, args.input))}: give C x H x W with H = W (square inputs)")
    c, h, _ = args.input
    kw = dict(in_chans=c, input_size=h, num_classes=args.num_classes)
    if args.match:
        ref = models.create(args.match, width_mult=args.match_width, **kw)
        result = scaling.match(ref, args.family, tolerance=args.tolerance, **kw)
        ref_params = sum(p.numel() for p in ref.parameters())
        header = f"{args.family} matching {args.match} (width {args.match_width:g}, {ref_params:,} params)"
    else:
        result = scaling.fit(args.family, max_params=args.max_params, max_macs=args.max_macs,
                             max_bytes=args.max_bytes, dtype=args.dtype, fmt=args.fmt, **kw)
        header = f"{args.family} within budget"
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(header)
    print(f"  width_mult  {result.width_mult:.4f}")
    print(f"  params      {result.param_count:,}")
    print(f"  MACs        {result.macs:,}")
    if result.size_bytes is not None:
        print(f"  bytes       {result.size_bytes:,} ({args.fmt}, {args.dtype})")
    return 0
