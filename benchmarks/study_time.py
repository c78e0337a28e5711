"""Wall time of the README's main job: `compress study --jobs 2` on the embedded default data.

    python benchmarks/study_time.py [--jobs 2] [--keep DIR]

Runs the study in a fresh temporary folder (nothing cached: sizing, training, latency, explain and report all
run) and prints the wall time of each phase as the study reports it and the total. Target: at most 5 minutes on
2 cores. Record the figure with the machine in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary folder)")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="compress-study-")
    os.makedirs(work, exist_ok=True)
    cmd = [sys.executable, "-m", "compress", "study", "--jobs", str(args.jobs),
           "--out", os.path.join(work, "sweep"), "--report", os.path.join(work, "report")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, text=True)
    seconds = time.perf_counter() - start
    print(f"compress study --jobs {args.jobs}: {seconds:.0f} s wall (exit {proc.returncode}), "
          f"{os.cpu_count()} CPUs; target <= 300 s -> {'met' if seconds <= 300 else 'MISSED'}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
