"""``compress models``: list the registered models."""

from __future__ import annotations

import json

SUMMARY = "list the registered models"


def register(sub) -> None:
    p = sub.add_parser("models", help=SUMMARY,
                       description="List the model names `compress.models.create` accepts. Every --model also "
                                   "takes PATH.py:NAME (your class or function; importing the file runs its code), "
                                   "torchvision:NAME and timm:NAME (where those packages import).")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args) -> int:
    from compress.models import describe

    names = describe()
    if args.json:
        print(json.dumps(names, indent=2))
    else:
        width = max(map(len, names))
        for name, text in names.items():
            print(f"{name:<{width}}  {text}")
        print("\nand, as --model: PATH.py:NAME (your own nn.Module), torchvision:NAME, timm:NAME")
    return 0
