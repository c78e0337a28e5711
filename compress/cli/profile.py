"""``compress profile NAME``: per-layer table and totals (params, MACs, FLOPs, bytes) of a registered model."""

from __future__ import annotations

import json

from compress.cli._common import parse_shape


def register(sub) -> None:
    p = sub.add_parser(
        "profile", help="count params, MACs, FLOPs, activation and file bytes of a model",
        description="Profile a model from compress.models at one input shape: per-layer table and totals "
                    "(conventions: compress.profile's docstring). --compare adds fvcore, thop and "
                    "torch.utils.flop_counter with the reason for each difference.")
    p.add_argument("name", help="a registered model (see `compress models`)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    p.add_argument("--depth", type=float, default=1.0, help="depth multiplier (default 1.0)")
    p.add_argument("--input", type=parse_shape, default=(1, 48, 48), metavar="CxHxW",
                   help="input shape CxHxW or NxCxHxW, batch 1 by default (default 1x48x48); "
                        "C is the model's in_chans and H its input_size")
    p.add_argument("--in-chans", type=int, default=None, help="input channels; must agree with --input's C")
    p.add_argument("--num-classes", type=int, default=7, help="output classes (default 7)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--compare", action="store_true", help="also run fvcore, thop and FlopCounterMode")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.models import create
    from compress.profile import compare, profile

    shape = tuple(args.input)
    if len(shape) not in (3, 4):
        raise ValueError(f"--input {'x'.join(map(str, shape))} must be CxHxW or NxCxHxW")
    chans, height = shape[-3], shape[-2]
    if args.in_chans is not None and args.in_chans != chans:
        raise ValueError(f"--in-chans {args.in_chans} disagrees with --input {'x'.join(map(str, shape))} "
                         f"({chans} channels)")
    model = create(args.name, width_mult=args.width, depth_mult=args.depth, num_classes=args.num_classes,
                   in_chans=chans, input_size=height)
    result = profile(model, shape)
    comparison = compare(model, shape, ours=result) if args.compare else None
    if args.json:
        out = {"model": getattr(model, "build_args", {"name": args.name}), **result.to_dict()}
        if comparison is not None:
            out["compare"] = comparison.to_dict()["counters"]
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.name} width {args.width:g} depth {args.depth:g}, {args.num_classes} classes")
        print(result.table())
        if comparison is not None:
            print()
            print(comparison.table())
    return 0
