"""``compress scale``: size a family to a budget along a scaling policy, or match another model's parameter count."""

from __future__ import annotations

import json

from compress.cli._common import (CREATE, MODEL_HELP, add_budget_options, add_field, add_model_arguments, budget_from,
                                  finite_float, given, library_constant, library_default, model_arguments, parse_shape,
                                  show_default)

SCALE_TO = "compress.models.scaling:scale_to"
MATCH = "compress.models.scaling:match"
SUMMARY = "find the widest model of a family within a budget, or matching another's size"


def register(sub) -> None:
    p = sub.add_parser(
        "scale", help=SUMMARY,
        description="Largest model of FAMILY along the scaling --policy within --max-params/--max-macs/"
                    "--max-bytes/--max-latency-ms (all given limits hold; compress.budget.Budget), or, with "
                    "--match, the width whose parameter count is within --tolerance of MODEL at --match-width.")
    p.add_argument("family", metavar="MODEL", help=MODEL_HELP + "; one from a file, torchvision or timm scales by "
                                                                 "its own width argument (--width-arg, --policy width)")
    add_model_arguments(p, flag=None)
    add_budget_options(p.add_argument_group("budget (compress.budget.Budget; all given limits hold)"))
    add_field(p, "--policy", SCALE_TO, "policy", choices=list(library_constant("compress.models.policies:POLICIES")),
              help="width: width only; compound: depth and width (EfficientNet); min_channels: the deepest model "
                   "keeping --min-channels per layer; compound_res: compound plus input resolution")
    add_field(p, "--min-channels", SCALE_TO, "min_channels", type=int, help="for --policy min_channels")
    p.add_argument("--match", metavar="MODEL", help="match the parameter count of this registered model")
    p.add_argument("--match-width", type=finite_float, default=1.0, help="width multiplier of --match (default 1.0)")
    add_field(p, "--tolerance", MATCH, "tolerance", type=finite_float, help="relative tolerance of --match")
    shape = (library_default(CREATE, "in_chans"), library_default(CREATE, "input_size"),
             library_default(CREATE, "input_size"))
    p.add_argument("--input", type=parse_shape, default=None, metavar="CxHxW",
                   help=f"input C x H x W, H = W (default {show_default(shape).replace(',', 'x')})")
    add_field(p, "--num-classes", CREATE, "num_classes", type=int, help="output classes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.models import create, scaling

    kw = given(args, create)
    if args.input is not None:
        if len(args.input) != 3 or args.input[1] != args.input[2]:
            raise ValueError(f"--input {'x'.join(map(str, args.input))}: give C x H x W with H = W (square inputs)")
        kw.update(in_chans=args.input[0], input_size=args.input[1])
    if args.match:
        ref = create(args.match, width_mult=args.match_width, **kw)
        result = scaling.match(ref, args.family, **given(args, scaling.match), **kw, **model_arguments(args))
        ref_params = sum(p.numel() for p in ref.parameters())
        header = f"{args.family} matching {args.match} (width {args.match_width:g}, {ref_params:,} params)"
    else:
        budget = budget_from(args)
        if budget is None or not budget.limits:
            raise ValueError("give a budget (--max-params, --max-macs, --max-bytes, --max-latency-ms) or --match")
        latency = None
        if budget.max_latency_ms is not None:
            from compress.bench import check_runtime, latency_ms

            check_runtime(budget.runtime)   # an unknown or missing runtime fails before the search
            latency = latency_ms
        result = scaling.scale_to(args.family, budget, latency=latency, **given(args, scaling.scale_to), **kw,
                                  **model_arguments(args))
        header = f"{args.family} within {budget.describe()} (policy {result.policy})"
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(header)
    print(result.table())
    return 0
