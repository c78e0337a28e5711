"""Wall time of one sweep on the process executor and on Ray, interleaved, and whether their records agree.

    python benchmarks/ray_sweep_time.py [--rounds 2] [--address HOST:PORT]

Each round runs `compress sweep` (default data; cnn and mlp at 20k parameters, 2 seeds, 2 epochs, no latency) in
a fresh folder twice: `--jobs 2`, then `--executor ray` (a private local Ray with one CPU per run, or the cluster
at --address). The Ray side includes starting and stopping Ray. Prints each wall time, the medians and the ratio,
and exits 1 if the two executors' records differ in any accuracy, parameter count or artifact size. Record the
figures with the machine in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SWEEP = ["--data", "default", "--families", "cnn,mlp", "--budgets", "20k", "--seeds", "2", "--epochs", "2",
         "--no-latency"]
KEYS = ("run_id", "param_count", "bytes_fp32", "bytes_int8", "val_acc", "test_acc", "best_epoch")


def run(side: list[str], out: str) -> tuple[float, list]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "compress", "sweep", *SWEEP, *side, "--out", out], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    with open(os.path.join(out, "results.json")) as f:
        records = json.load(f)["records"]
    return seconds, sorted(tuple(r[k] for k in KEYS) for r in records)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--address", help="a running Ray cluster (default: a private local Ray per sweep)")
    args = parser.parse_args()
    sides = {"process (--jobs 2)": ["--jobs", "2"],
             "ray": ["--executor", "ray"] + (["--address", args.address] if args.address else [])}
    times: dict[str, list[float]] = {name: [] for name in sides}
    records = {}
    work = tempfile.mkdtemp(prefix="compress-ray-bench-")
    for i in range(args.rounds):
        for name, side in sides.items():
            seconds, records[name] = run(side, os.path.join(work, f"{i}-{side[1]}"))
            times[name].append(seconds)
            print(f"round {i + 1}: {name}: {seconds:.1f} s", flush=True)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, m in medians.items():
        print(f"{name}: median {m:.1f} s over {args.rounds} rounds")
    print(f"ray / process: {medians['ray'] / medians['process (--jobs 2)']:.2f}x; {os.cpu_count()} CPUs")
    same = records["ray"] == records["process (--jobs 2)"]
    print("records agree" if same else "RECORDS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
