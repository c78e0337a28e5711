"""``compress train``: train a registered model on a dataset and write a run folder (see compress.train)."""

from __future__ import annotations

import math
import sys

from compress.cli._common import (CREATE, LOAD, TRAIN_CONFIG, add_data_arguments, add_field, add_log_arguments,
                                  add_model_arguments, finite_float, given, model_arguments, non_negative_int,
                                  parse_float_pair, parse_key_value, positive_int, report_skipped)

SUMMARY = "train a model and write a run folder"

_FLIP = {"auto": None, "on": True, "off": False}
MAX_SEEDS = 64   # models trained together as one stacked model: memory grows with each (--seeds)


def _flip(text: str) -> bool | None:
    import argparse

    if text not in _FLIP:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of auto, on, off")
    return _FLIP[text]


def _seeds(text: str) -> int:
    """argparse type: a seed count from 1 to :data:`MAX_SEEDS`."""
    import argparse

    value = positive_int(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SEEDS} seeds train together (each adds a model to "
                                         f"the stacked one); run several commands for more")
    return value


def register(sub) -> None:
    p = sub.add_parser(
        "train", help=SUMMARY,
        description="Train a model (compress's, one from your file, torchvision's or timm's: see --model) on a dataset; writes config.json, history.json, "
                    "metrics.json, environment.json, checkpoint.pt and curves.png into --out. While it trains, --out.partial/resume.pt "
                    "holds its state after the last finished epoch: the same command with --resume continues it.")
    add_model_arguments(p, required=True)   # no default: a 3.2M-parameter model for 30 epochs is no one's guess
    add_field(p, "--width", CREATE, "width_mult", type=finite_float, help="width multiplier")
    add_field(p, "--depth", CREATE, "depth_mult", type=finite_float, help="depth multiplier")
    add_field(p, "--dropout", CREATE, "dropout", type=finite_float, help="dropout before the classifier (none: the family's)")
    add_data_arguments(p)
    add_field(p, "--val-fraction", LOAD, "val_fraction", type=finite_float, help="validation share of training rows")
    add_field(p, "--input-size", LOAD, "input_size", type=int, help="resize images to this side length")
    p.add_argument("--stream", action="store_true",
                   help="read the image folder --data lazily, batch by batch (compress.data.stream_folder: for a "
                        "folder larger than memory; slower than the default, which holds the images in memory)")
    p.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                   help="with --stream: worker processes decoding images (default 0: in the training process)")
    p.add_argument("--out", required=True, help="run folder to create (refused if it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run of this same command from OUT.partial/resume.pt (its last finished "
                        "epoch; with --seeds, beside the first seed's folder); it ends as the uninterrupted run "
                        "would have")
    g = p.add_argument_group("training (compress.train.TrainConfig)")
    add_field(g, "--epochs", TRAIN_CONFIG, "epochs", type=int)
    add_field(g, "--batch-size", TRAIN_CONFIG, "batch_size", type=int, help="images per step")
    add_field(g, "--optimizer", TRAIN_CONFIG, "optimizer", choices=("adamw", "sgd"))
    add_field(g, "--lr", TRAIN_CONFIG, "lr", type=finite_float, help="peak learning rate")
    add_field(g, "--schedule", TRAIN_CONFIG, "schedule", choices=("cosine", "onecycle", "constant"))
    add_field(g, "--weight-decay", TRAIN_CONFIG, "weight_decay", type=finite_float)
    add_field(g, "--label-smoothing", TRAIN_CONFIG, "label_smoothing", type=finite_float)
    add_field(g, "--no-augment", TRAIN_CONFIG, "augment", switch=False, help="switch all augmentation off")
    add_field(g, "--flip", TRAIN_CONFIG, "flip", type=_flip, metavar="{auto,on,off}",
              help="horizontal flips", none="auto, on unless the data are digits")
    add_field(g, "--rotate", TRAIN_CONFIG, "rotate_deg", type=finite_float, help="max rotation, degrees")
    add_field(g, "--translate", TRAIN_CONFIG, "translate_frac", type=finite_float, help="max shift, fraction of the side")
    add_field(g, "--scale", TRAIN_CONFIG, "scale_range", type=parse_float_pair, metavar="LO,HI", help="zoom range")
    add_field(g, "--erase", TRAIN_CONFIG, "erase_prob", type=finite_float, help="random-erasing probability")
    add_field(g, "--no-normalize", TRAIN_CONFIG, "normalize", switch=False, help="feed raw 0..255 pixels (ablation)")
    add_field(g, "--seed", TRAIN_CONFIG, "seed", type=int, help="initial weights, shuffling, augmentation, data split")
    add_field(g, "--device", TRAIN_CONFIG, "device", help="cpu, cuda, cuda:N or auto")
    add_field(g, "--no-amp", TRAIN_CONFIG, "amp", switch=False, help="no bfloat16 autocast on CUDA")
    add_field(g, "--ema", TRAIN_CONFIG, "ema_decay", type=finite_float, metavar="DECAY", help="EMA of weights, e.g. 0.999")
    add_field(g, "--patience", TRAIN_CONFIG, "patience", type=int,
              help="early stop after N epochs without better val acc")
    add_field(g, "--bn-recalibrate", TRAIN_CONFIG, "bn_recalibrate", type=int, metavar="N",
              help="re-estimate BatchNorm statistics on N training images before each evaluation (0: off)")
    add_field(g, "--threads", TRAIN_CONFIG, "threads", type=int, help="CPU threads for torch")
    add_field(g, "--teacher", TRAIN_CONFIG, "teacher", metavar="RUN", help="run folder of a teacher (distillation)")
    add_field(g, "--temperature", TRAIN_CONFIG, "temperature", type=finite_float, help="distillation temperature")
    add_field(g, "--alpha", TRAIN_CONFIG, "alpha", type=finite_float, help="distillation weight")
    g.add_argument("--bn-l1", type=finite_float, metavar="WEIGHT",
                   help="network slimming before pruning: L1 penalty on BatchNorm scales per unit |gamma|, e.g. 1e-4 "
                        "(compress.prune.BatchNormL1; default none: no penalty)")
    p.add_argument("--set", type=parse_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other TrainConfig setting, e.g. --set eval_batch_size=512 (JSON value), repeatable")
    p.add_argument("--seeds", type=_seeds, default=1,
                   help="train seeds --seed, --seed+1, ... together as one stacked model (compress.train.fit_many); "
                        f"one run folder each, OUT-s<seed> (default 1: one run in OUT; at most {MAX_SEEDS})")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    add_log_arguments(p)
    p.set_defaults(run=run)


def _stream(args, seed: int):
    """``--stream``: the image folder ``--data`` as streamed TorchData, split as ``compress.data.load`` splits it."""
    from pathlib import Path

    from compress import data as data_mod
    from compress.data.image_folder import stream_folder

    if not Path(args.data).is_dir():
        raise ValueError(f"--stream reads an image folder (one subfolder per class, or train/ val/ test/ of those); "
                         f"--data {args.data!r} is not a folder")
    if args.skip_bad_rows:
        raise ValueError("--skip-bad-rows reads every image before training; with --stream an unreadable image "
                         "stops the run naming its file (check the folder first, or train without --stream)")
    options = given(args, data_mod.load)
    return stream_folder(args.data, seed=seed, num_workers=args.workers, **options)


def run(args) -> int:
    from pathlib import Path

    import torch

    from compress import _io
    from compress import data as data_mod
    from compress.models import create
    from compress.prune.regularize import BatchNormL1
    from compress.track import Tracker, make_loggers
    from compress.train import TrainConfig, fit_many
    from compress.train.resume import check_outs

    config = TrainConfig.from_dict({**dict(args.set), **given(args, TrainConfig)})
    regularizer = BatchNormL1(args.bn_l1) if args.bn_l1 is not None else None
    if regularizer is not None and not regularizer.weight:
        regularizer = None                                      # --bn-l1 0: no penalty, as without the option
    seeds = list(range(config.seed, config.seed + args.seeds))
    outs = [Path(args.out)] if args.seeds == 1 else [Path(f"{args.out}-s{s}") for s in seeds]
    for out in outs:   # before any work: never an input (the data, the teacher), existing only with --overwrite
        _io.check_output_folder(out, inputs=[args.data, *([args.test_data] if getattr(args, "test_data", None) else []),
                                             *([config.teacher] if config.teacher else [])],
                                overwrite=None if args.resume else bool(args.overwrite))
    check_outs(outs, resume=args.resume, overwrite=args.overwrite)   # a resume state there, or a leftover one
    # the model's name and width before the data: a typo is one line, not one after the data has loaded
    from compress.models.sources import check_name

    check_name(args.model)
    width = given(args, create).get("width_mult")
    if width is not None and not (math.isfinite(width) and width > 0):
        raise ValueError(f"--width must be a positive finite number, got {width}")
    # loggers before the data: a package not installed or a log folder not writable is one line, nothing trained
    trackers = [Tracker(make_loggers(args.log, out, **given(args, make_loggers)), keep_open=True) if args.log
                else None for out in outs]
    if args.stream:
        bundle = _stream(args, config.seed)
    else:
        bundle = data_mod.load(args.data, seed=config.seed, skip_bad_rows=args.skip_bad_rows,
                               **given(args, data_mod.load))
        report_skipped(bundle)
    print(bundle.describe(), file=sys.stderr)
    if not isinstance(bundle.input_size, int):
        raise ValueError(f"{args.data}: images are {bundle.image_hw[0]}x{bundle.image_hw[1]}; models need square "
                         "input, pass --input-size")
    models = []
    for seed in seeds:
        torch.manual_seed(seed)   # initial weights depend on the seed only, not on what ran before in the process
        models.append(create(args.model, num_classes=bundle.num_classes, in_chans=bundle.in_chans,
                             input_size=bundle.input_size, **given(args, create), **model_arguments(args)))
    results = fit_many(models, bundle, config, seeds=seeds, outs=outs, overwrite=args.overwrite,
                       progress=False if args.quiet else None, regularizer=regularizer, resume=args.resume,
                       loggers=trackers)
    for result, tracker in zip(results, trackers):
        if tracker is not None:   # fit wrote curves.png and logged the run folder's files
            tracker.finish(result.metrics)
        m = result.metrics
        line = ([f"seed {result.config.seed}"] if len(results) > 1 else []) + [
            f"best epoch {m['best_epoch']}/{m['epochs_run']}",
            f"val_acc {m['val_acc']:.4f}" if m["val_acc"] is not None else "no validation split"]
        if m.get("test_acc") is not None:
            line.append(f"test_acc {m['test_acc']:.4f}")
        line.append(f"{m['train_seconds']:.1f}s training, {m['train_images_per_s']:.0f} images/s")
        print(", ".join(line))
        print(f"run folder: {result.path}")
    return 0
