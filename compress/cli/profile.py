"""``compress profile NAME``: per-layer table and totals (params, MACs, FLOPs, bytes) of a registered model."""

from __future__ import annotations

import json

from compress.cli._common import (CREATE, MODEL_HELP, add_field, add_model_arguments, finite_float, given,
                                  library_default, model_arguments, parse_shape)

SUMMARY = "count params, MACs, FLOPs, activation and file bytes of a model"


def register(sub) -> None:
    p = sub.add_parser(
        "profile", help=SUMMARY,
        description="Profile a model (compress's, your own, torchvision's or timm's) at one input shape: per-layer table and totals "
                    "(conventions: compress.profile's docstring). --compare adds fvcore, thop and "
                    "torch.utils.flop_counter with the reason for each difference.")
    p.add_argument("name", metavar="MODEL", help=MODEL_HELP)
    add_model_arguments(p, flag=None)
    add_field(p, "--width", CREATE, "width_mult", type=finite_float, help="width multiplier")
    add_field(p, "--depth", CREATE, "depth_mult", type=finite_float, help="depth multiplier")
    size, chans = library_default(CREATE, "input_size"), library_default(CREATE, "in_chans")
    p.add_argument("--input", type=parse_shape, default=None, metavar="CxHxW",
                   help="input shape CxHxW or NxCxHxW, batch 1 by default; C is the model's in_chans and H its "
                        f"input_size (default {chans}x{size}x{size})")
    add_field(p, "--in-chans", CREATE, "in_chans", type=int, help="input channels; must agree with --input's C")
    add_field(p, "--num-classes", CREATE, "num_classes", type=int, help="output classes")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--compare", action="store_true", help="also run fvcore, thop and FlopCounterMode")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.models import card_of, create
    from compress.profile import compare, profile

    kw = given(args, create)
    if args.input is not None:
        shape = tuple(args.input)
        if len(shape) not in (3, 4):
            raise ValueError(f"--input {'x'.join(map(str, shape))} must be CxHxW or NxCxHxW")
        if "in_chans" in kw and kw["in_chans"] != shape[-3]:
            raise ValueError(f"--in-chans {kw['in_chans']} disagrees with --input {'x'.join(map(str, shape))} "
                             f"({shape[-3]} channels)")
        kw.update(in_chans=shape[-3], input_size=shape[-2])
    model = create(args.name, **kw, **model_arguments(args))
    card = card_of(model)
    assert card is not None   # create() gives every model its card
    if args.input is None:
        shape = tuple(card.input_shape)
    result = profile(model, shape)
    comparison = compare(model, shape, ours=result) if args.compare else None
    if args.json:
        out = {"model": card.to_dict(), **result.to_dict()}
        if comparison is not None:
            out["compare"] = comparison.to_dict()["counters"]
        print(json.dumps(out, indent=2))
    else:
        b = card.build_args
        print(f"{args.name} width {b.get('width_mult', 1.0):g} depth {b.get('depth_mult', 1.0):g}, "
              f"{card.num_classes} classes")
        print(result.table())
        if comparison is not None:
            print()
            print(comparison.table())
    return 0
