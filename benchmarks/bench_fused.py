"""Fused multi-seed training: ``compress.train.fit_many`` (K seeds as one stacked model) against K separate
``compress.train.fit`` runs, same models, same settings, both sides interleaved in one process.

Each round trains the K seeds both ways (the order alternates between rounds); images/s = K x training images x
epochs / wall seconds of the whole call (training, BatchNorm recalibration and validation every epoch, final
evaluation), median over rounds. ``--vmap`` adds a step-level side: one training step (forward, backward, AdamW)
of the K members through ``torch.func`` (``stack_module_state`` + ``functional_call`` + ``vmap``) against the
stacked model's step, the two ways of fusing the issue allowed.

    python benchmarks/bench_fused.py                                  # K = 3 and 8, CPU, 1 thread
    python benchmarks/bench_fused.py --device cuda --threads 2 --batch-size 256
    python benchmarks/bench_fused.py --policy compound --input-size 14 --batch-size 128 --members 3,5 \
        --train-images 3600 --models mobilenet_v1:20000,cnn:20000,mlp:80000      # the default study's points
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from compress import data, train
from compress.data.bundle import Split
from compress.device import device_name, resolve_device
from compress.budget import Budget
from compress.models import scaling

MODELS = "mlp:80000,cnn:20000,cnn:80000,mobilenet_v1:20000,mobilenet_v1:80000"


def _members(fit: scaling.Scaled, k: int) -> list[torch.nn.Module]:
    out = []
    for seed in range(k):
        torch.manual_seed(seed)
        out.append(fit.create())
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_sides(fit: scaling.Scaled, bundle, config: train.TrainConfig, k: int, rounds: int) -> dict:
    images = k * len(bundle.train) * config.epochs
    fused, separate = [], []
    for r in range(rounds):
        models = _members(fit, k)

        def run_fused():
            train.fit_many([copy.deepcopy(m) for m in models], bundle, config, seeds=list(range(k)), progress=False)

        def run_separate():
            for seed, m in enumerate(models):
                train.fit(copy.deepcopy(m), bundle, dataclasses.replace(config, seed=seed), progress=False)

        sides = [(fused, run_fused), (separate, run_separate)]
        for times, fn in (sides if r % 2 == 0 else sides[::-1]):
            times.append(images / _timed(fn))
    f, s = statistics.median(fused), statistics.median(separate)
    return {"fused_images_per_s": f, "separate_images_per_s": s, "ratio": f / s}


def step_sides(fit: scaling.Scaled, k: int, batch: int, device, repeats: int = 20) -> dict:
    """Steps/s of the K members through torch.func.vmap and through the stacked model (no data, no eval)."""
    from torch.func import functional_call, stack_module_state, vmap

    from compress.train.stack import member_losses, stack_inputs, stack_models

    models = [m.to(device) for m in _members(fit, k)]
    c, h, _ = models[0].card.input_shape
    x = torch.randn(k, batch, c, h, h, device=device)
    y = torch.randint(0, models[0].card.num_classes, (k, batch), device=device)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt_v = torch.optim.AdamW(list(params.values()), lr=1e-3, fused=True)

    def call(p, b, xx):
        return functional_call(base, (p, b), (xx,))

    def vmap_step():
        out = vmap(call)(params, buffers, x)
        loss = F.cross_entropy(out.reshape(k * batch, -1), y.reshape(-1), reduction="none").view(k, batch).mean(1)
        opt_v.zero_grad()
        loss.sum().backward()
        opt_v.step()

    stacked = stack_models(models)
    xs = stack_inputs(list(x))
    opt_s = torch.optim.AdamW(stacked.parameters(), lr=1e-3, fused=True)

    def stack_step():
        loss = member_losses(stacked(xs), y)
        opt_s.zero_grad()
        loss.sum().backward()
        opt_s.step()

    out = {}
    for name, fn in (("vmap", vmap_step), ("stack", stack_step)):
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[f"{name}_step_ms"] = 1e3 * (time.perf_counter() - start) / repeats
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", default=MODELS, help=f"FAMILY:PARAMS,... sized with scaling.scale_to (default {MODELS})")
    p.add_argument("--members", default="3,8", help="K values (default 3,8)")
    p.add_argument("--data", default="default")
    p.add_argument("--input-size", type=int, default=None,
                   help="resize the images to this side (default: as stored; the default study uses 14)")
    p.add_argument("--policy", default="width", help="scaling policy of scaling.scale_to (default width; the study: "
                                                     "compound)")
    p.add_argument("--train-images", type=int, default=1024, help="training images used (default 1024)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per side (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vmap", action="store_true", help="also time one step: torch.func.vmap vs the stacked model")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bundle = data.load(args.data, input_size=args.input_size)
    keep = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(0))[:args.train_images]
    bundle = dataclasses.replace(bundle, train=Split(bundle.train.x[keep], bundle.train.y[keep], mean=bundle.mean,
                                                     std=bundle.std))
    config = train.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=str(device),
                               threads=args.threads)
    print(f"device {device} ({device_name(device)}), torch {torch.__version__}, threads {args.threads}, "
          f"{len(bundle.train)} train images of {bundle.input_size}x{bundle.input_size}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {args.rounds} rounds, policy {args.policy}")
    print(f"{'model':<22}{'params':>8}{'K':>3}{'fused img/s':>13}{'separate img/s':>16}{'ratio':>8}"
          + (f"{'vmap step ms':>14}{'stack step ms':>15}" if args.vmap else ""))
    kw = dict(in_chans=bundle.in_chans, input_size=bundle.input_size, num_classes=bundle.num_classes,
              channel_divisor=1)
    for item in args.models.split(","):
        family, _, budget = item.partition(":")
        fit = scaling.scale_to(family, Budget(max_params=int(budget)), policy=args.policy, **kw)
        for k in (int(v) for v in args.members.split(",")):
            r = train_sides(fit, bundle, config, k, args.rounds)
            line = (f"{family + ':' + budget:<22}{fit.param_count:>8,}{k:>3}{r['fused_images_per_s']:>13.0f}"
                    f"{r['separate_images_per_s']:>16.0f}{r['ratio']:>7.2f}x")
            if args.vmap:
                s = step_sides(fit, k, args.batch_size, device)
                line += f"{s['vmap_step_ms']:>14.1f}{s['stack_step_ms']:>15.1f}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
