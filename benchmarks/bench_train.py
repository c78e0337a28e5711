"""Training throughput: ``compress.train.fit`` against a straightforward PyTorch loop, same model, same epochs.

The baseline is what a course notebook does: a ``Dataset`` whose ``__getitem__`` converts one image to float,
augments it (flip, rotation/translation/scale through ``affine_grid``/``grid_sample`` on that one image) and
normalizes it; a ``DataLoader`` (shuffle, ``num_workers=0``) batches; each batch is moved to the device.
``fit`` keeps the uint8 dataset resident on the device and augments whole batches in one call.

Both sides start from the same initial weights, use AdamW, the same batch size, the same augmentation
settings, and evaluate the validation split after every epoch. The first epoch of each side is a warm-up
and not counted; images/s = training images / seconds over the remaining epochs.

    python benchmarks/bench_train.py                       # CPU, 2 threads, default digits
    python benchmarks/bench_train.py --device cuda --models mobilenet_v1:0.5,cnn:1.0 --epochs 4
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from compress import data, models, train
from compress.device import device_name, resolve_device


class PerSampleDataset(torch.utils.data.Dataset):
    """uint8 images augmented one at a time in ``__getitem__`` (the straightforward way)."""

    def __init__(self, x, y, mean, std, *, flip, rotate_deg, translate_frac, scale_range):
        self.x, self.y = x, y
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.flip, self.rotate, self.translate, self.scale = flip, rotate_deg, translate_frac, scale_range

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i].float() / 255.0
        if self.flip and random.random() < 0.5:
            img = img.flip(-1)
        angle = math.radians(random.uniform(-self.rotate, self.rotate))
        s = random.uniform(*self.scale)
        tx = random.uniform(-self.translate, self.translate) * 2
        ty = random.uniform(-self.translate, self.translate) * 2
        theta = torch.tensor([[math.cos(angle) / s, -math.sin(angle) / s, tx],
                              [math.sin(angle) / s, math.cos(angle) / s, ty]]).unsqueeze(0)
        grid = F.affine_grid(theta, [1, *img.shape], align_corners=False)
        img = F.grid_sample(img.unsqueeze(0), grid, align_corners=False).squeeze(0)
        return (img - self.mean) / self.std, self.y[i]


def baseline_fit(model, bundle, config: train.TrainConfig, device) -> list[float]:
    """A plain loop; returns seconds per epoch."""
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    ds = PerSampleDataset(bundle.train.x, bundle.train.y, bundle.mean, bundle.std,
                          flip=bool(config.flip), rotate_deg=config.rotate_deg,
                          translate_frac=config.translate_frac, scale_range=config.scale_range)
    loader = torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True, num_workers=0,
                                         drop_last=len(ds) % config.batch_size == 1)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = len(loader) * config.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    seconds = []
    for _ in range(config.epochs):
        t0 = time.perf_counter()
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        with torch.no_grad():  # validation each epoch, as fit does
            xv = bundle.normalize(bundle.val.x).to(device)
            (model(xv).argmax(1).cpu() == bundle.val.y).float().mean()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    return seconds


def measure(name: str, width: float, bundle, config: train.TrainConfig, device) -> dict:
    torch.manual_seed(0)
    model = models.create(name, width_mult=width, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                          input_size=bundle.input_size)
    params = sum(p.numel() for p in model.parameters())
    n = len(bundle.train)
    run = train.fit(copy.deepcopy(model), bundle, config, progress=False)
    fit_s = [row["seconds"] for row in run.history][1:]
    base_s = baseline_fit(copy.deepcopy(model), bundle, config, device)[1:]
    fit_ips, base_ips = n * len(fit_s) / sum(fit_s), n * len(base_s) / sum(base_s)
    return {"model": f"{name}:{width:g}", "param_count": params, "fit_images_per_s": fit_ips,
            "baseline_images_per_s": base_ips, "ratio": fit_ips / base_ips,
            "fit_epoch_s_median": statistics.median(fit_s), "baseline_epoch_s_median": statistics.median(base_s)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--models", default="mlp:0.25,cnn:0.25,mobilenet_v1:0.175",
                   help="comma-separated NAME:WIDTH (default mlp:0.25,cnn:0.25,mobilenet_v1:0.175)")
    p.add_argument("--data", default="default")
    p.add_argument("--train-images", type=int, default=2048, help="training images used (default 2048)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per side, the first is warm-up (default 3)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for both sides (default 2)")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is warm-up)")
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bundle = data.load(args.data)
    keep = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(0))[:args.train_images]
    bundle.train.x, bundle.train.y = bundle.train.x[keep], bundle.train.y[keep]   # random: the file is sorted
    config = train.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=str(device),
                               flip=False, amp=False, threads=args.threads)
    dev_name = device_name(device)
    print(f"device {device} ({dev_name}), torch {torch.__version__}, threads {args.threads}, "
          f"{len(bundle.train)} train images {bundle.in_chans}x{bundle.input_size}x{bundle.input_size}, "
          f"batch {args.batch_size}, {args.epochs - 1} timed epochs")
    print(f"{'model':<20}{'params':>9}{'fit img/s':>12}{'loop img/s':>12}{'ratio':>8}")
    for item in args.models.split(","):
        name, _, width = item.partition(":")
        r = measure(name, float(width or 1.0), bundle, config, device)
        print(f"{r['model']:<20}{r['param_count']:>9,}{r['fit_images_per_s']:>12.0f}"
              f"{r['baseline_images_per_s']:>12.0f}{r['ratio']:>7.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
