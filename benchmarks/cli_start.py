"""How long the command line takes to answer ``--help`` and an argument error, beside how long importing torch
takes (what every command paid before the parser read the library's defaults from the source).

Goal (issue 26): ``compress --help`` and ``compress train --help`` under 0.6 s on this machine. Each side runs in a
fresh interpreter, the sides interleaved, ``--rounds`` times; medians and ranges in seconds of wall time.

    python benchmarks/cli_start.py [--rounds 11] [--json PATH]

Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

GOAL_S = 0.6


def _compress() -> list[str]:
    found = shutil.which("compress")
    return [found] if found else [sys.executable, "-m", "compress"]


SIDES = {
    "compress --help": [*_compress(), "--help"],
    "compress train --help": [*_compress(), "train", "--help"],
    "compress train --epochs many (an argument error)": [*_compress(), "train", "--out", "x", "--epochs", "many"],
    "compress sweep --help": [*_compress(), "sweep", "--help"],
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
}
GOALS = ("compress --help", "compress train --help")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side, command in SIDES.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            times[side].append(time.perf_counter() - start)
    rows = {side: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)} for side, t in times.items()}
    width = max(map(len, rows))
    print(f"{'side':{width}}  median s  (min-max)")
    for side, r in rows.items():
        print(f"{side:{width}}  {r['median_s']:8.3f}  ({r['min_s']:.3f}-{r['max_s']:.3f})")
    missed = [side for side in GOALS if rows[side]["median_s"] >= GOAL_S]
    print(f"goal: {', '.join(GOALS)} under {GOAL_S} s: " + ("met" if not missed else f"MISSED by {', '.join(missed)}"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": args.rounds, "goal_s": GOAL_S, "sides": rows}, f, indent=2)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
