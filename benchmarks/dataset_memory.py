"""Peak memory of training from a DataLoader over a folder of images far larger than that memory.

Goal (issue 26): one epoch from a ``DataLoader`` over a folder of 2 GB of images with peak memory under 1 GB.

The script writes ``--gb`` GB of 224x224 RGB noise PNGs (stored, not deflated: noise does not compress, and a
stored PNG decodes fast) into a temporary folder, one subfolder per class, plus a small validation folder; then, in
a fresh interpreter (so that nothing the generation did counts), trains a small compress CNN for one epoch from a
``DataLoader`` over :class:`compress.data.image_folder.ImageFolderDataset` (decoded lazily with Pillow, resized to
the model's 64x64 input; batches of 128) with ``--workers`` worker processes, validating on a streamed validation loader. It reports
the peak resident memory of the training process (``ru_maxrss``), of its largest worker (``RUSAGE_CHILDREN``), their
sum as an upper bound (self + workers x largest worker: a forked worker's resident pages are mostly shared with the
parent, so this counts those twice), and the peak of the process tree's proportional set size (PSS, sampled every
0.2 s: shared pages split between the processes sharing them, the memory the tree really holds). The folder is
removed afterwards. Each worker count is measured twice: over the big folder, and over the 20 MB validation folder
as training data (the same process without the big data: torch, the model and a batch's activations), so the
difference is what streaming the dataset costs.

    python benchmarks/dataset_memory.py [--gb 2] [--workers 0,2] [--json PATH]

Exit status 1 when the goal is missed: the tree's peak PSS or the training process's peak RSS over 1 GiB (the
RSS bound counts pages shared with forked workers once per worker, so it overstates what is held).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

GOAL_BYTES = 2**30
SIDE = 224
CLASSES = 10


def _write(args: tuple[str, int, int]) -> int:
    """Write ``count`` noise PNGs into ``folder`` (seeded by ``start``); returns the bytes written."""
    import numpy as np
    from PIL import Image

    folder, start, count = args
    rng = np.random.default_rng(start)
    written = 0
    for i in range(start, start + count):
        path = Path(folder) / f"{i % CLASSES}" / f"{i:06d}.png"
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(path, compress_level=0)
        written += path.stat().st_size
    return written


def generate(root: Path, total_bytes: int, jobs: int) -> tuple[int, int]:
    """Write about ``total_bytes`` of images into ``root`` (``jobs`` processes); returns (images, bytes)."""
    for c in range(CLASSES):
        (root / str(c)).mkdir(parents=True)
    per_image = SIDE * SIDE * 3 + 1200                       # a stored PNG: the pixels, row filters, chunks
    images = total_bytes // per_image + 1
    chunk = 500
    parts = [(str(root), s, min(chunk, images - s)) for s in range(0, images, chunk)]
    with ProcessPoolExecutor(jobs) as pool:
        written = sum(pool.map(_write, parts))
    return images, written


def _pss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def train(folder: Path, val: Path, workers: int) -> dict:
    """One epoch from a DataLoader over ``folder`` (the measured side, run in a fresh interpreter)."""
    import torch
    from torch.utils.data import DataLoader

    from compress import models
    from compress.data.image_folder import ImageFolderDataset
    from compress.data.torch_data import TorchData
    from compress.train import TrainConfig
    from compress.train.fitting import fit

    peak = {"pss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak["pss"] = max(peak["pss"], _pss_bytes(_tree(os.getpid())))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    train_set = ImageFolderDataset(folder, input_size=64)
    loader = DataLoader(train_set, batch_size=128, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(ImageFolderDataset(val, input_size=64), batch_size=128, num_workers=workers)
    torch.manual_seed(0)
    model = models.create("cnn", channels=[16, 32], num_classes=CLASSES, in_chans=3, input_size=64)
    run = fit(model, TorchData(loader, val=val_loader), TrainConfig(epochs=1, threads=1, device="cpu"),
              progress=False)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    kib = 1024
    self_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib
    child_bytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib
    return {"images": len(train_set), "seconds": seconds, "train_acc": run.history[-1]["train_acc"],
            "self_peak_bytes": self_bytes, "largest_worker_peak_bytes": child_bytes,
            "upper_bound_bytes": self_bytes + workers * child_bytes, "tree_pss_peak_bytes": peak["pss"]}


def _machine() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def _measure(folder: Path, val: Path, workers: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--workers", str(workers), "--train-only", str(folder),
                           str(val)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-4000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0, help="gigabytes (2**30 bytes) of training images to write")
    p.add_argument("--workers", default="0,2", help="DataLoader worker processes: one measurement per count")
    p.add_argument("--jobs", type=int, default=2, help="processes writing the images")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--train-only", nargs=2, metavar=("FOLDER", "VAL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.train_only:   # the measured side, in its own interpreter
        print(json.dumps(train(Path(args.train_only[0]), Path(args.train_only[1]), int(args.workers))))
        return 0
    counts = [int(w) for w in args.workers.split(",")]
    root = Path(tempfile.mkdtemp(prefix="compress-dataset-memory-"))
    results = []
    try:
        t0 = time.perf_counter()
        images, written = generate(root / "train", int(args.gb * 2**30), args.jobs)
        generate(root / "val", 20 * 2**20, 1)
        made_s = time.perf_counter() - t0
        print(f"wrote {images:,} images, {written / 2**30:.2f} GB, in {made_s:.0f} s", flush=True)
        load = os.getloadavg()[0]
        for workers in counts:   # the 20 MB validation folder as training data: the same process, no big data
            for name, folder in (("2 GB folder", root / "train"), ("20 MB folder (reference)", root / "val")):
                results.append({"data": name, "workers": workers, **_measure(folder, root / "val", workers)})
                print(f"measured: {name}, {workers} workers", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    mib = 2**20
    print(f"machine: {_machine()}, load average {load:.2f} before training; dataset {written / 2**30:.2f} GB, "
          f"{images:,} PNGs of {SIDE}x{SIDE} RGB; written in {made_s:.0f} s")
    print(f"{'data':26s} {'workers':>7s} {'epoch s':>8s} {'self RSS':>9s} {'worker RSS':>10s} {'RSS bound':>9s} "
          f"{'tree PSS':>9s}  (MiB)")
    for r in results:   # no workers: RUSAGE_CHILDREN only holds short subprocesses (git for the provenance)
        worker = f"{r['largest_worker_peak_bytes'] / mib:10.0f}" if r["workers"] else f"{'-':>10s}"
        print(f"{r['data']:26s} {r['workers']:7d} {r['seconds']:8.0f} {r['self_peak_bytes'] / mib:9.0f} {worker} "
              f"{r['upper_bound_bytes'] / mib:9.0f} {r['tree_pss_peak_bytes'] / mib:9.0f}")
    big = [r for r in results if r["data"].startswith("2 GB")]
    ok = all(r["tree_pss_peak_bytes"] < GOAL_BYTES and r["self_peak_bytes"] < GOAL_BYTES for r in big)
    print(f"goal: the 2 GB folder's peak (tree PSS, and the training process's RSS) under {GOAL_BYTES / mib:.0f} "
          f"MiB: {'met' if ok else 'MISSED'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": _machine(), "load_before": load, "dataset_bytes": written,
                                               "images": images, "generate_seconds": made_s,
                                               "results": results}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
