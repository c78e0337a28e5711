"""``fit``: check the inputs, run the training loop (:mod:`compress.train.loop`), restore the best weights,
measure, write the run folder.

``fit(model, data, config)`` trains, keeps the best weights by validation accuracy (restored at the end) and
returns a :class:`~compress.train.runs.Run`; with ``out=`` it writes a run folder (:mod:`compress.train.runs`).
:func:`~compress.train.fused.fit_many` shares all of it (:func:`train_members`) for K stacked members.
Fine-tuning through a weight transform (pruning masks, quantization-aware training, centroids) is ``fit`` with
``weight_transform=`` (:mod:`compress.train.hooks`): it keeps the last weights instead of the best.

Inputs to the model: ``normalize=True`` standardizes with the training split's per-channel mean and std;
``normalize=False`` feeds raw pixel values 0..255 as floats (the "no normalization" of the seed reports).

Data: a :class:`~compress.data.bundle.DataBundle` (or a source ``compress.data.load`` reads) trains from memory,
the fast path; a torch ``Dataset``, ``DataLoader`` or :class:`~compress.data.torch_data.TorchData` is streamed
batch by batch (:mod:`compress.train.feed`), validation too, with bounded memory. A bare Dataset or DataLoader is
training data only: with no validation data the best epoch is the one of the best training accuracy (as for a
bundle without a validation split), so give ``TorchData(train, val=...)`` to choose by validation accuracy.

Figures: with ``out=`` the run folder also gets ``curves.png`` (:mod:`compress.train.curves`); ``curves=False``
leaves it out (sweeps, which train hundreds of runs, do).

Tracking (``loggers=``, :mod:`compress.track`): the run's settings when training starts, each epoch's history row,
the run folder's files once written and the final metrics go to TensorBoard, MLflow or ``metrics.csv``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from compress.data.bundle import DataBundle, Normalizer
from compress.data.torch_data import TorchData, as_torch_data
from compress.device import resolve_device, torch_threads
from compress.models.card import ModelCard, card_of
from compress.track import Logger, Tracker
from compress.train.config import TrainConfig
from compress.train.curves import training_curves
from compress.train.distill import resolve_teacher
from compress.train.hooks import Regularizer, WeightTransformHook, regularizer_record
from compress.train.inference import evaluate
from compress.train.runs import Run, config_json, write_run
from compress.train.loop import TrainingLoop, eval_batch_size
from compress.train import resume as resume_mod

__all__ = ["fit", "train_members", "log_run"]


def fit(model: nn.Module, data: DataBundle | TorchData | Dataset | DataLoader | str,
        config: TrainConfig | None = None, *,
        out: str | os.PathLike | None = None, overwrite: bool = False,
        teacher: nn.Module | Run | str | os.PathLike | None = None,
        progress: bool | Callable[[dict], None] | None = None, regularizer: Regularizer | None = None,
        weight_transform: WeightTransformHook | None = None, normalizer: Normalizer | None = None,
        resume: bool = False, loggers: Sequence[Logger] | Tracker | None = None, curves: bool = True) -> Run:
    """Train ``model`` on ``data`` and return a :class:`Run` (best weights restored, eval mode).

    ``data``: a bundle or a source for ``compress.data.load`` (in memory), or a torch ``Dataset``, ``DataLoader``
    or :class:`~compress.data.torch_data.TorchData` (streamed; a bare Dataset or DataLoader is training data only,
    so the best epoch is chosen by training accuracy: give ``TorchData(train, val=...)`` to choose by validation).
    ``out``: run folder to write, with ``curves.png`` unless ``curves=False``; an existing one
    raises ``FileExistsError`` unless ``overwrite``. While training, ``OUT.partial/resume.pt`` holds the state at
    the last finished epoch (:mod:`compress.train.resume`); ``resume=True`` continues a killed run from it (the
    same model, data and config; ValueError otherwise) and ends as the uninterrupted run would have. ``teacher``: a model, a Run or a run folder for
    knowledge distillation (overrides ``config.teacher``). ``progress``: None = tqdm on a terminal, one line
    per epoch otherwise; False = silent; a callable gets each history row. ``regularizer``: ``model -> loss term``
    added at every step (e.g. ``compress.prune.BatchNormL1``), recorded in config.json as its ``to_dict()``.
    ``weight_transform``: fine-tuning through transformed weights (:class:`~compress.train.hooks.WeightTransformHook`,
    e.g. ``compress.quant.qat.WeightTransform``: pruning masks, fake quantization, centroids); the model keeps the
    last weights, materialized, with no validation per epoch; needs ``ema_decay=None`` and ``bn_recalibrate=0``.
    ``normalizer``: the model's input normalization (default: the training split's statistics, or raw pixels with
    ``config.normalize=False``); pass a trained run's own when fine-tuning it.
    ``loggers``: :mod:`compress.track` loggers (``[CsvLogger(folder), TensorBoardLogger()]``) or a
    :class:`~compress.track.Tracker`: started with the settings (unless already started), one ``log_metrics`` per
    epoch (steps go on from ``tracker.last_step``), the run folder's files as artifacts, then finished with the final
    metrics (unless ``keep_open``). A logger that fails is reported once on stderr and dropped; training goes on.
    Same seed, same initial weights, CPU → identical history (apart from ``seconds``). Seeds torch's global
    RNG with ``config.seed`` (dropout draws from it); shuffling and augmentation use their own generator.
    """
    return train_members([model], data, config, seeds=[(config or TrainConfig()).seed], outs=[out],
                         overwrite=overwrite, teacher=teacher, progress=progress, stack=False,
                         regularizer=regularizer, weight_transform=weight_transform, normalizer=normalizer,
                         resume=resume, loggers=None if loggers is None else [loggers], curves=curves)[0]


def _instance_card(model: nn.Module, data: DataBundle | TorchData) -> ModelCard | None:
    """A card for a model built by the user's own code when it can be rebuilt with no arguments
    (:func:`compress.models.sources.instance_card_args`), so its run folder works from every command."""
    from compress.models.sources import instance_card_args

    if not isinstance(data.input_size, int):
        return None
    args = instance_card_args(model, num_classes=data.num_classes, in_chans=data.in_chans,
                              input_size=data.input_size)
    return ModelCard(args) if args is not None else None


def train_members(models: list[nn.Module], data: DataBundle | TorchData | Dataset | DataLoader | str,
                  config: TrainConfig | None, *, seeds: list[int], outs: list, overwrite: bool, teacher, progress,
                  stack: bool, regularizer: Regularizer | None = None,
                  weight_transform: WeightTransformHook | None = None, normalizer: Normalizer | None = None,
                  resume: bool = False, loggers: Sequence | None = None, curves: bool = True) -> list[Run]:
    """What :func:`fit` and :func:`compress.train.fused.fit_many` share: check, train (``stack``: the members as
    one stacked model; ``resume``: from the state beside the first run folder), restore each member's best
    weights, measure, write each member's run folder (with ``curves.png`` unless ``curves`` is False).
    ``loggers``: one entry per member (a Tracker, a list of loggers, or None). Streamed data trains one member."""
    from compress import data as data_mod
    from compress.train.stack import stack_models

    config = config or TrainConfig()
    if regularizer is not None and not callable(regularizer):
        raise TypeError(f"regularizer must be a callable model -> loss term, got {type(regularizer).__name__}")
    _check_weight_transform(weight_transform, config, len(models))
    trackers = _trackers(loggers, len(models))
    out_paths = [Path(o) if o is not None else None for o in outs]
    resume_mod.check_outs(out_paths, resume=resume, overwrite=overwrite)
    if resume and weight_transform is not None:
        raise ValueError("resume: fine-tuning through a weight transform keeps no resume state (its masks and "
                         "steps are its own); train it again")
    if isinstance(data, (TorchData, Dataset, DataLoader)):
        if len(models) != 1:
            raise ValueError(f"streamed data (a torch Dataset/DataLoader) trains one model at a time; "
                             f"{len(models)} stacked members need a DataBundle in memory")
        data = as_torch_data(data)
        normalizer = _prepare_stream(data, models[0], config, normalizer)
    elif not isinstance(data, DataBundle):
        data = data_mod.load(data, seed=config.seed)
    # a TorchData is checked by _prepare_stream: not empty, every item an (image, label) pair
    if not isinstance(data, TorchData) and (data.train is None or not len(data.train) or not data.train.labeled):
        raise ValueError(f"{data.source}: no labeled training images")
    train_split = data.train
    assert train_split is not None   # refused above for a bundle; a TorchData always has one
    if len(train_split) < 2:   # BatchNorm cannot normalize a batch of one image
        raise ValueError(f"{data.source}: the training split has {len(train_split)} image; training needs at least "
                         f"2 (give more rows, or a smaller val_fraction)")
    for path in out_paths:
        if path is not None and path.exists() and not overwrite and not resume:
            raise FileExistsError(f"run folder {path} exists (pass overwrite=True / --overwrite)")
        if path is not None:   # a read-only parent must fail now, not after training
            folder = path.resolve().parent
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ValueError(f"run folder {path}: {folder} is not writable")
    device = resolve_device(config.device)
    configs = [dataclasses.replace(config, seed=s) for s in seeds]
    with torch_threads(config.threads):
        teacher_model, teacher_norm, teacher_info = resolve_teacher(teacher or config.teacher, device)
        for m in models:
            _check_model(m, data, device)
        if teacher_model is not None:
            _check_model(teacher_model, data, device, role="teacher")
        if isinstance(data, TorchData):   # every item checked, the statistics summed: one pass, before training
            data.prepare(config.batch_size, statistics=normalizer is None)
        trained = stack_models(models).to(device) if stack else models[0]
        loop = TrainingLoop(trained, len(models), data, config, list(seeds), device, teacher_model, teacher_norm,
                            regularizer=regularizer, transform=weight_transform, normalizer=normalizer)
        first = out_paths[0]   # the resume state lives beside the first run folder
        keep = weight_transform is None and all(o is not None for o in out_paths)   # a resume state
        card = card_of(models[0])
        ident = resume_mod.identity(config, list(seeds), models[0], data, loop.normalizer, teacher=teacher_info,
                                    regularizer=regularizer_record(regularizer),
                                    card=card.to_dict() if card is not None else None) if keep else None
        kept = (first, ident) if keep and first is not None and ident is not None else None
        state = None
        if resume:
            assert kept is not None   # check_outs needs the run folder's state, and a weight transform is refused
            state, loop.normalizer = resume_mod.read_state(*kept)
        if keep and not resume:
            resume_mod.discard(out_paths)                      # a killed run's state, overwritten (checked above)
        report = _progress_fn(progress, math.ceil(config.epochs), len(models), seeds,
                              start=resume_mod.epochs_done(state))
        if any(trackers):
            report = _tracked(report, trackers, models, configs, out_paths, data, regularizer)
        histories, states, train_metrics = loop.run(
            report, resume=state, resume_name=str(resume_mod.resume_file(kept[0])) if resume and kept else "",
            save=resume_mod.saver(*kept) if kept else None)
        runs = []
        for model, cfg, history, state, metrics, out_path in zip(models, configs, histories, states, train_metrics,
                                                                 out_paths):
            model.to(device)
            model.load_state_dict(state)
            model.eval()
            metrics.update(_final_metrics(model, data, loop.normalizer, cfg))
            run = Run(model=model, config=cfg, history=history, metrics=metrics, data_source=data.source,
                      data_options=dict(data.options), class_names=data.class_names, normalizer=loop.normalizer,
                      card=card_of(model) or _instance_card(model, data))
            run.info = config_json(run, data, loop.aug.flip if loop.aug is not None else False, teacher_info,
                                   regularizer=regularizer_record(regularizer))
            if out_path is not None:
                write_run(run, out_path, overwrite or resume)   # resumed: replaces what a kill left of it
                if curves and history:
                    training_curves(history, out_path / "curves.png", title=run.info["model"]["class"])
            runs.append(run)
        for run, tracker in zip(runs, trackers):
            if tracker:
                log_run(tracker, run, finish=not tracker.keep_open)
        if keep:
            resume_mod.discard(out_paths)
    return runs


def _trackers(loggers: Sequence | None, members: int) -> list[Tracker | None]:
    if loggers is None:
        return [None] * members
    loggers = list(loggers)
    if len(loggers) != members:
        raise ValueError(f"loggers: {members} models need one entry each (a Tracker, a list of loggers or None), "
                         f"got {len(loggers)}")
    return [None if lg is None else lg if isinstance(lg, Tracker) else Tracker(lg) for lg in loggers]


def _tracked(report, trackers: list, models: list, configs: list, out_paths: list, data: DataBundle | TorchData,
             regularizer) -> Callable[[int, dict], None]:
    """``report`` that also logs each member's history row; starts the trackers not started yet, with the
    settings as parameters."""
    offsets = []
    for k, tracker in enumerate(trackers):
        offsets.append(tracker.last_step if tracker else 0)
        if tracker and not tracker.started:
            card = card_of(models[k])
            name = (out_paths[k].name if out_paths[k] is not None
                    else f"{type(models[k]).__name__}-s{configs[k].seed}")
            tracker.start(name, {"train": dataclasses.asdict(configs[k]),
                                 "model": card.to_dict() if card is not None else {"class": type(models[k]).__name__},
                                 "data": {"source": str(data.source), "classes": data.num_classes,
                                          "train_n": len(data.train) if data.train is not None else 0,
                                          "val_n": len(data.val) if data.val else 0},
                                 "regularizer": regularizer_record(regularizer)})

    def log(member, row):
        tracker = trackers[member]
        if tracker:
            tracker.log_metrics(offsets[member] + int(row["epoch"]),
                                {k: v for k, v in row.items() if k not in ("epoch", "seed")})
        report(member, row)
    return log


def log_run(tracker: Tracker, run: Run, *, finish: bool = True) -> None:
    """The end of a tracked run: its folder's files (once written) as artifacts, then, with ``finish``, its
    final metrics."""
    if run.path is not None:
        for name in ("config.json", "metrics.json", "history.json", "checkpoint.pt", "curves.png"):
            if (run.path / name).exists():
                tracker.log_artifact(run.path / name)
    if finish:
        tracker.finish(run.metrics)


def _check_weight_transform(transform, config: TrainConfig, members: int) -> None:
    if transform is None:
        return
    if not isinstance(transform, WeightTransformHook):
        raise TypeError(f"weight_transform must have trainable(), weights(), after_step(step, total_steps) and "
                        f"materialize() (compress.train.hooks.WeightTransformHook), got {type(transform).__name__}")
    if members != 1:
        raise ValueError("weight_transform trains one model; fit_many stacks several")
    if config.ema_decay is not None or config.bn_recalibrate:
        raise ValueError(f"weight_transform: EMA and BatchNorm recalibration read the model's own weights, not the "
                         f"transformed ones; set ema_decay=None and bn_recalibrate=0 (got {config.ema_decay}, "
                         f"{config.bn_recalibrate})")


def _final_metrics(model: nn.Module, data: DataBundle | TorchData, normalizer, config: TrainConfig) -> dict:
    metrics = {}
    val = data.val if data.val is not None and len(data.val) else None
    for name, split in (("val", val), ("test", data.test)):
        if split is not None and len(split) and split.labeled:
            ev = evaluate(model, split, normalizer=normalizer, batch_size=eval_batch_size(config, data))
            metrics.update({f"{name}_loss": ev["loss"], f"{name}_acc": ev["acc"], f"{name}_n": ev["n"]})
        else:
            metrics.update({f"{name}_loss": None, f"{name}_acc": None, f"{name}_n": 0})
    return metrics


def _check_model(model: nn.Module, data: DataBundle | TorchData, device: torch.device, role: str = "model") -> None:
    """One forward pass on two training images, so a shape mismatch fails before any training."""
    model.to(device)
    if isinstance(data, TorchData):
        x = _first_images(data)
    else:
        assert data.train is not None   # train_members refused a bundle without training images
        x = data.train.x[:2]
    x = x.to(device).float()
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            y = model(x)
    except RuntimeError as exc:
        raise ValueError(f"{role} does not accept {data.in_chans}x{data.image_hw[0]}x{data.image_hw[1]} "
                         f"images from {data.source}: {str(exc).splitlines()[0]}") from None
    finally:
        model.train(was)
    if y.ndim != 2 or y.shape[1] != data.num_classes:
        raise ValueError(f"{role} outputs {tuple(y.shape[1:])} per image but {data.source} has "
                         f"{data.num_classes} classes")


def _first_images(data: TorchData) -> torch.Tensor:
    """The first training image of streamed data, twice (a model in eval mode takes any batch; two as a bundle's)."""
    return data.train.first()[0].unsqueeze(0).expand(2, -1, -1, -1)


def _prepare_stream(data: TorchData, model: nn.Module, config: TrainConfig,
                    normalizer: Normalizer | None) -> Normalizer | None:
    """Streamed data's classes (when it names none, the model's output width) and the normalizer to train with
    (None: the data's statistics, which :meth:`TorchData.prepare` sums once the models are checked)."""
    if not data.num_classes:
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(_first_images(data).to(next(iter(model.parameters()), torch.zeros(0)).device).float())
        except RuntimeError as exc:
            raise ValueError(f"model does not accept {'x'.join(map(str, data.train.first()[0].shape))} images from "
                             f"{data.source}: {str(exc).splitlines()[0]}") from None
        finally:
            model.train(was)
        if out.ndim != 2:
            raise ValueError(f"model outputs {tuple(out.shape[1:])} per image; a classifier outputs (classes,)")
        data.with_num_classes(int(out.shape[1]))
    if normalizer is None and data.normalized:
        normalizer = Normalizer((), ())                  # the dataset's images are the model's input already
    elif normalizer is None and not config.normalize:
        normalizer = Normalizer((), (), enabled=False)   # raw pixel values, as a bundle's with normalize=False
    return normalizer


def _progress_fn(progress, epochs: int, members: int = 1, seeds=(0,), start: int = 0) -> Callable[[int, dict], None]:
    """``report(member, row)``: None = tqdm on a terminal (one model), one line per epoch otherwise; False =
    silent; a callable gets each history row (with ``seed`` added when several members train together).
    ``start``: epochs a resumed run had finished (said once, the bar starts there)."""
    if progress is False:
        return lambda member, row: None
    if callable(progress):
        if members == 1:
            return lambda member, row: progress(row)
        return lambda member, row: progress({**row, "seed": seeds[member]})
    if start:
        print(f"resuming after epoch {start}/{epochs}", file=sys.stderr, flush=True)
    if sys.stderr.isatty() and members == 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start, unit="epoch", file=sys.stderr)

        def tick(member, row):
            bar.update(1)
            bar.set_postfix({k: f"{row[k]:.4f}" for k in ("train_loss", "val_acc") if k in row})
            if row["epoch"] == epochs:
                bar.close()
        return tick

    def line(member, row):
        parts = ([f"seed {seeds[member]}"] if members > 1 else []) + [
            f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}",
            f"train_acc {row['train_acc']:.4f}"]
        if "val_acc" in row:
            parts += [f"val_loss {row['val_loss']:.4f}", f"val_acc {row['val_acc']:.4f}"]
        parts += [f"lr {row['lr']:.2e}", f"{row['seconds']:.1f}s"]
        print("  ".join(parts), file=sys.stderr, flush=True)
    return line
