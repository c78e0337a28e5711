"""``compress scale``: size a family to a budget along a scaling policy, or match another model's parameter count."""

from __future__ import annotations

import json

from compress.cli._common import add_field, finite_float, given, library_default, parse_count, parse_shape, show_default


def register(sub) -> None:
    from compress.models import create, scaling

    p = sub.add_parser(
        "scale", help="find the widest model of a family within a budget, or matching another's size",
        description="Largest model of FAMILY along the scaling --policy within --max-params/--max-macs/"
                    "--max-bytes/--max-latency-ms (all given budgets hold), or, with --match, the width whose "
                    "parameter count is within --tolerance of MODEL at --match-width.")
    p.add_argument("family", help="a registered model name (see `compress models`)")
    add_field(p, "--max-params", scaling.fit, "max_params", type=parse_count, metavar="N",
              help="parameter budget, e.g. 100k", none="no limit")
    add_field(p, "--max-macs", scaling.fit, "max_macs", type=parse_count, metavar="N",
              help="multiply-accumulate budget at batch 1, e.g. 5M", none="no limit")
    add_field(p, "--max-bytes", scaling.fit, "max_bytes", type=parse_count, metavar="N",
              help="bytes of the serialized state_dict, e.g. 225000", none="no limit")
    add_field(p, "--max-latency-ms", scaling.fit, "max_latency_ms", type=finite_float, metavar="MS",
              help="batch-1 latency on this CPU, 1 thread, measured with --latency-runtime", none="no limit")
    add_field(p, "--latency-runtime", scaling.fit, "latency_runtime", help="runtime for --max-latency-ms")
    add_field(p, "--policy", scaling.fit, "policy", choices=list(scaling.POLICIES),
              help="width: width only; compound: depth and width (EfficientNet); min_channels: the deepest model "
                   "keeping --min-channels per layer; compound_res: compound plus input resolution")
    add_field(p, "--min-channels", scaling.fit, "min_channels", type=int, help="for --policy min_channels")
    add_field(p, "--dtype", scaling.fit, "dtype", choices=["float32", "float16"], help="dtype for --max-bytes")
    add_field(p, "--format", scaling.fit, "format", choices=["pt", "npz"], help="file format for --max-bytes")
    p.add_argument("--match", metavar="MODEL", help="match the parameter count of this registered model")
    p.add_argument("--match-width", type=finite_float, default=1.0, help="width multiplier of --match (default 1.0)")
    add_field(p, "--tolerance", scaling.match, "tolerance", type=finite_float, help="relative tolerance of --match")
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
        header = f"{args.family} within budget (policy {result.policy})"
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    from compress.models.scaling import architecture_shape

    shape = architecture_shape(result.build_args)
    print(header)
    print(f"  width_mult  {result.width_mult:.4f}")
    print(f"  depth_mult  {result.depth_mult:.4g}")
    print(f"  input       {result.input_size}x{result.input_size}")
    print(f"  layers      {shape['layers']} weight layers, {shape['narrowest']} to {shape['widest']} channels")
    print(f"  params      {result.param_count:,}")
    print(f"  MACs        {result.macs:,}")
    if result.latency_ms is not None:
        runtime = args.latency_runtime or library_default(scaling.fit, "latency_runtime")
        print(f"  latency     {result.latency_ms:.3f} ms (batch 1, 1 thread, {runtime})")
    if result.size_bytes is not None:
        fmt = args.format or library_default(scaling.fit, "format")
        dtype = args.dtype or show_default(library_default(scaling.fit, "dtype"))
        print(f"  bytes       {result.size_bytes:,} ({fmt}, {dtype})")
    return 0
