"""Deep Compression goals (issue 12): export a trained run into a byte budget and compare test accuracy with fp32.

    python benchmarks/deep_compression.py RUN --max-bytes 225000 [--out model.npz] [--threads 1]
    python benchmarks/deep_compression.py RUN --artifact model.npz      # only score an artifact already written

Prints the export's candidate table and plan (unless --artifact), then one line: parameters, file bytes,
bits per parameter (whole file, and the planned layers' arrays only), fp32 and artifact test accuracy (the
artifact as reloaded from disk by compress.export.load), the change in points, and the export's wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv=None) -> int:
    from compress.export import artifact, export_run
    from compress.quant.deep import DeepConfig
    from compress.train import evaluate, load_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--max-bytes", type=int)
    p.add_argument("--artifact")
    p.add_argument("--out", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--deep", default="on", choices=("on", "auto", "off"))
    p.add_argument("--json", default=None, help="append the result row to this JSON-lines file")
    args = p.parse_args(argv)
    if (args.max_bytes is None) == (args.artifact is None):
        p.error("give --max-bytes (export) or --artifact (score only)")
    src = load_run(args.run)
    seconds = None
    path = args.artifact
    if path is None:
        path = args.out or os.path.join(args.run, "deep.npz")
        t0 = time.perf_counter()
        export = export_run(args.run, path, max_bytes=args.max_bytes, deep=args.deep, overwrite=True,
                            deep_config=DeepConfig(threads=args.threads),
                            log=lambda line: print(line, file=sys.stderr, flush=True))
        seconds = time.perf_counter() - t0
        print(export.summary())
    test = src.data().test
    params = sum(p.numel() for p in src.model.parameters())
    size = os.path.getsize(path)
    manifest, encoded = artifact.read(path)
    acc32 = evaluate(src.model, test, normalizer=src.normalizer)["acc"]
    acc = evaluate(artifact.load(path), test, normalizer=src.normalizer)["acc"]
    planned = sum(sum(t.numel() * t.element_size() for t in encoded[lp[0]].arrays.values())
                  for lp in manifest.get("plan", {}).get("layers", []))
    row = {"run": args.run, "artifact": path, "param_count": params, "size_bytes": size,
           "file_bits_per_param": 8 * size / params, "planned_bits_per_param": 8 * planned / params,
           "fp32_test_acc": acc32, "test_acc": acc, "delta_points": 100 * (acc - acc32), "export_seconds": seconds}
    print(f"{params:,} params, {size:,} bytes ({row['file_bits_per_param']:.2f} bits/param for the whole file, "
          f"{row['planned_bits_per_param']:.2f} for the planned layers), test acc fp32 {100 * acc32:.2f}% -> "
          f"{100 * acc:.2f}% ({row['delta_points']:+.2f} points)"
          + (f", export {seconds:.0f} s" if seconds is not None else ""))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
