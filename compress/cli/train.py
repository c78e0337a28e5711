"""``compress train``: train a registered model on a dataset and write a run folder (see compress.train)."""

from __future__ import annotations

import json
import sys


def _float_pair(text: str) -> tuple[float, float]:
    import argparse

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be two numbers LOW,HIGH such as 0.9,1.1") from None
    return lo, hi


def _key_value(text: str) -> tuple[str, object]:
    import argparse

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_data_arguments(p, *, default: str | None = "default", required: bool = False) -> None:
    p.add_argument("--data", default=default, required=required, metavar="SOURCE",
                   help="CSV (label,feature | emotion,pixels,Usage | id,feature), .npz, image folder, "
                        "'default' (5,000 MNIST digits) or 'synthetic'" + (f" (default {default})" if default else ""))
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip rows with bad data (and list them) instead of stopping at the first")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model and write a run folder",
        description="Train a model from compress.models on a dataset; writes config.json, history.json, "
                    "metrics.json, environment.json, checkpoint.pt and curves.png into --out.")
    p.add_argument("--model", default="mobilenet_v1", help="registered model name (default mobilenet_v1)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    p.add_argument("--depth", type=float, default=1.0, help="depth multiplier (default 1.0)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout before the classifier (default 0)")
    p.add_argument("--model-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="family option for models.create (JSON value), repeatable")
    add_data_arguments(p)
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share of training rows (0.1)")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this side length")
    p.add_argument("--out", required=True, help="run folder to create (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    g = p.add_argument_group("training (compress.train.TrainConfig)")
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    g.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (default 1e-2)")
    g.add_argument("--schedule", choices=("cosine", "onecycle", "constant"), default="cosine")
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--no-augment", action="store_true", help="switch all augmentation off")
    g.add_argument("--flip", choices=("auto", "on", "off"), default="auto",
                   help="horizontal flips (auto: on unless the data are digits)")
    g.add_argument("--rotate", type=float, default=10.0, help="max rotation, degrees (default 10)")
    g.add_argument("--translate", type=float, default=0.1, help="max shift, fraction of the side (0.1)")
    g.add_argument("--scale", type=_float_pair, default=(0.9, 1.1), metavar="LO,HI", help="zoom range (0.9,1.1)")
    g.add_argument("--erase", type=float, default=0.0, help="random-erasing probability (default 0)")
    g.add_argument("--no-normalize", action="store_true", help="feed raw 0..255 pixels (ablation)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    g.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast on CUDA")
    g.add_argument("--ema", type=float, default=None, metavar="DECAY", help="EMA of weights, e.g. 0.999")
    g.add_argument("--patience", type=int, default=None, help="early stop after N epochs without better val acc")
    g.add_argument("--bn-recalibrate", type=int, default=2048, metavar="N",
                   help="re-estimate BatchNorm statistics on N training images before each evaluation (0: off)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    g.add_argument("--teacher", default=None, metavar="RUN", help="run folder of a teacher (distillation)")
    g.add_argument("--temperature", type=float, default=4.0, help="distillation temperature (default 4)")
    g.add_argument("--alpha", type=float, default=0.5, help="distillation weight (default 0.5)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(run=run)


def report_skipped(bundle, limit: int = 10) -> None:
    if not bundle.skipped:
        return
    print(f"skipped {len(bundle.skipped)} bad rows:", file=sys.stderr)
    for f, line, reason in bundle.skipped[:limit]:
        print(f"  {f}:{line}: {reason}" if line else f"  {f}: {reason}", file=sys.stderr)
    if len(bundle.skipped) > limit:
        print(f"  ... and {len(bundle.skipped) - limit} more", file=sys.stderr)


def run(args) -> int:
    from pathlib import Path

    from compress import data as data_mod
    from compress.models import create
    from compress.train import TrainConfig, fit

    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists (add --overwrite to replace it)")
    config = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        schedule=args.schedule, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        augment=not args.no_augment, flip={"auto": None, "on": True, "off": False}[args.flip],
        rotate_deg=args.rotate, translate_frac=args.translate, scale_range=args.scale, erase_prob=args.erase,
        normalize=not args.no_normalize, seed=args.seed, device=args.device, amp=not args.no_amp,
        ema_decay=args.ema, patience=args.patience, bn_recalibrate=args.bn_recalibrate, num_threads=args.threads, teacher=args.teacher,
        temperature=args.temperature, alpha=args.alpha)
    bundle = data_mod.load(args.data, val_fraction=args.val_fraction, seed=args.seed,
                           image_size=args.image_size, skip_bad_rows=args.skip_bad_rows)
    report_skipped(bundle)
    print(bundle.describe(), file=sys.stderr)
    if not isinstance(bundle.input_size, int):
        raise ValueError(f"{args.data}: images are {bundle.image_hw[0]}x{bundle.image_hw[1]}; models need square "
                         "input, pass --image-size")
    import torch

    torch.manual_seed(args.seed)   # initial weights depend on --seed only, not on what ran before in the process
    model = create(args.model, width_mult=args.width, depth_mult=args.depth, num_classes=bundle.num_classes,
                   in_chans=bundle.in_chans, input_size=bundle.input_size, dropout=args.dropout,
                   **dict(args.model_opt))
    result = fit(model, bundle, config, out=args.out, overwrite=args.overwrite, progress=False if args.quiet else None)
    m = result.metrics
    line = [f"best epoch {m['best_epoch']}/{m['epochs_run']}", f"val_acc {m['val_acc']:.4f}" if m["val_acc"] is not None
            else "no validation split"]
    if m.get("test_acc") is not None:
        line.append(f"test_acc {m['test_acc']:.4f}")
    line.append(f"{m['train_seconds']:.1f}s training, {m['train_images_per_s']:.0f} images/s")
    print(", ".join(line))
    print(f"run folder: {result.path}")
    return 0
