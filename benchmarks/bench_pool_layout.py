"""Global average pooling's gradient layout: ``blocks.GlobalAvgPool`` against ``nn.AdaptiveAvgPool2d(1)``.

Both pools give the same outputs and gradients, bit for bit (``tests/test_blocks.py``); they differ in the memory
layout of the gradient they send down. autograd's own is NCHW, so in a model trained channels_last (what
``compress.train.fit`` does) the ReLU and BatchNorm backward below the pool mix NCHW with channels_last, which
PyTorch's CPU kernels run many times slower. ``GlobalAvgPool`` hands back a channels_last gradient.

One training step (forward, cross-entropy, backward, AdamW) of the same model with either pool, channels_last,
both sides interleaved in one process (the order alternates between rounds); median ms per step over rounds.

    python benchmarks/bench_pool_layout.py                                    # 1 thread, batch 128, 14x14
    python benchmarks/bench_pool_layout.py --models mobilenet_v1:20000 --input-size 28 --batch-size 64
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from compress.blocks import GlobalAvgPool
from compress.device import device_name
from compress.budget import Budget
from compress.models import scaling

MODELS = "mobilenet_v1:5000,mobilenet_v1:20000,mobilenet_v1:80000,mobilenet_v2:80000,cnn:20000"


def step_ms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 1e3 * (time.perf_counter() - start) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=MODELS, help=f"FAMILY:PARAMS,... sized with scaling.scale_to (default {MODELS})")
    p.add_argument("--policy", default="compound", help="scaling policy (default compound, the study's)")
    p.add_argument("--input-size", type=int, default=14, help="image side (default 14, the study's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round (default 20)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cl = torch.channels_last
    x = torch.randn(args.batch_size, 1, args.input_size, args.input_size).contiguous(memory_format=cl)
    y = torch.randint(0, 10, (args.batch_size,))
    print(f"{device_name('cpu')}, torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
          f"{args.input_size}x{args.input_size}, policy {args.policy}, {args.rounds} rounds x {args.steps} steps")
    print(f"{'model':<22}{'params':>8}{'AdaptiveAvgPool2d ms':>22}{'GlobalAvgPool ms':>18}{'speedup':>9}")
    for item in args.models.split(","):
        family, _, budget = item.partition(":")
        fit = scaling.scale_to(family, Budget(max_params=int(budget)), policy=args.policy, in_chans=1,
                          input_size=args.input_size, num_classes=10, channel_divisor=1)
        torch.manual_seed(0)
        ours = fit.create().to(memory_format=cl)
        if not isinstance(getattr(ours, "pool", None), GlobalAvgPool):
            p.error(f"--models: {family} has no global average pool to compare")
        plain = copy.deepcopy(ours)
        plain.pool = nn.AdaptiveAvgPool2d(1)
        times: dict[str, list[float]] = {"plain": [], "ours": []}
        sides = [("plain", plain), ("ours", ours)]
        for r in range(args.rounds):
            for name, model in (sides if r % 2 == 0 else sides[::-1]):
                times[name].append(step_ms(model, x, y, args.steps))
        a, b = statistics.median(times["plain"]), statistics.median(times["ours"])
        print(f"{item:<22}{fit.param_count:>8,}{a:>22.2f}{b:>18.2f}{a / b:>8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
