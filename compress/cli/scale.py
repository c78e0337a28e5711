"""``compress scale``: size a family to a budget, or match another model's parameter count."""

from __future__ import annotations

import json

from compress.cli._common import add_field, given, library_default, parse_count, parse_shape, show_default


def register(sub) -> None:
    from compress.models import create, scaling

    p = sub.add_parser(
        "scale", help="find the widest model of a family within a budget, or matching another's size",
        description="Largest width multiplier of FAMILY within --max-params/--max-macs/--max-bytes "
                    "(all given budgets hold), or, with --match, the width whose parameter count is within "
                    "--tolerance of MODEL at --match-width.")
    p.add_argument("family", help="a registered model name (see `compress models`)")
    add_field(p, "--max-params", scaling.fit, "max_params", type=parse_count, metavar="N",
              help="parameter budget, e.g. 100k", none="no limit")
    add_field(p, "--max-macs", scaling.fit, "max_macs", type=parse_count, metavar="N",
              help="multiply-accumulate budget at batch 1, e.g. 5M", none="no limit")
    add_field(p, "--max-bytes", scaling.fit, "max_bytes", type=parse_count, metavar="N",
              help="bytes of the serialized state_dict, e.g. 225000", none="no limit")
    add_field(p, "--dtype", scaling.fit, "dtype", choices=["float32", "float16"], help="dtype for --max-bytes")
    add_field(p, "--format", scaling.fit, "format", choices=["pt", "npz"], help="file format for --max-bytes")
    p.add_argument("--match", metavar="MODEL", help="match the parameter count of this registered model")
    p.add_argument("--match-width", type=float, default=1.0, help="width multiplier of --match (default 1.0)")
    add_field(p, "--tolerance", scaling.match, "tolerance", type=float, help="relative tolerance of --match")
    shape = (library_default(create, "in_chans"), library_default(create, "input_size"),
             library_default(create, "input_size"))
    p.add_argument("--input", type=parse_shape, default=None, metavar="CxHxW",
                   help=f"input C x H x W, H = W (default {show_default(shape).replace(',', 'x')})")
    add_field(p, "--num-classes", create, "num_classes", type=int, help="output classes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import torch

    from compress.models import create, scaling

    kw = given(args, create)
    if args.input is not None:
        if len(args.input) != 3 or args.input[1] != args.input[2]:
            raise ValueError(f"--input {'x'.join(map(str, args.input))}: give C x H x W with H = W (square inputs)")
        kw.update(in_chans=args.input[0], input_size=args.input[1])
    if args.match:
        ref = create(args.match, width_mult=args.match_width, **kw)
        result = scaling.match(ref, args.family, **given(args, scaling.match), **kw)
        ref_params = sum(p.numel() for p in ref.parameters())
        header = f"{args.family} matching {args.match} (width {args.match_width:g}, {ref_params:,} params)"
    else:
        budget = given(args, scaling.fit)
        if "dtype" in budget:
            budget["dtype"] = getattr(torch, budget["dtype"])
        result = scaling.fit(args.family, **budget, **kw)
        header = f"{args.family} within budget"
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(header)
    print(f"  width_mult  {result.width_mult:.4f}")
    print(f"  params      {result.param_count:,}")
    print(f"  MACs        {result.macs:,}")
    if result.size_bytes is not None:
        fmt = args.format or library_default(scaling.fit, "format")
        dtype = args.dtype or show_default(library_default(scaling.fit, "dtype"))
        print(f"  bytes       {result.size_bytes:,} ({fmt}, {dtype})")
    return 0
