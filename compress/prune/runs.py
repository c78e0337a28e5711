"""Pruning a run folder: ``prune_run(RUN, config, out=RUN2)`` -> a new run folder, like ``compress train``'s.

The model comes from the run (rebuilt from its card), the data from ``run.data()`` (same split) unless ``data=`` is
given (a bundle, or streamed :class:`~compress.data.torch_data.TorchData` with validation or test data to score
on: what a run trained on a torch Dataset needs, since its data cannot be reloaded), fine-tuning is
:func:`compress.train.fit` with the run's own training settings for ``finetune_epochs`` epochs after each step
(``train=`` overrides settings). The new ``config.json`` holds the pruned model's card (its ``widths``), so
``load_run``, ``export``, ``explain``, ``profile`` and ``latency`` work on it, and a ``"prune"`` section: the
source run, the PruneConfig, the before/after figures and one row per step. ``loggers=`` tracks it as one run
(:mod:`compress.track`): the settings, every fine-tuning epoch (steps go on across pruning steps), the run folder's
files, the final metrics with the after-pruning quantities.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from compress.data.torch_data import is_torch_data
from compress.prune.pruner import PruneConfig, PruneResult, prune

__all__ = ["prune_run", "final_metrics"]


def prune_run(path: str | os.PathLike, config: PruneConfig, *, out: str | os.PathLike | None = None,
              overwrite: bool = False, train: Mapping[str, Any] | None = None,
              latency: Callable[..., float] | None = None,
              progress: bool | Callable[[dict], None] | None = False,
              loggers: Sequence[Any] | Any | None = None, data: Any = None) -> tuple[PruneResult, Any]:
    """Prune the model of run folder ``path``; returns ``(result, run)``, the run written to ``out`` if given.

    ``result.before``/``after`` hold the accuracy on the run's evaluation split (test when labeled, else val).
    ``data``: the data to score and fine-tune on instead of the run's own (``run.data()``): a ``DataBundle``, or a
    :class:`~compress.data.torch_data.TorchData` (streamed, normalized with the run's own statistics) with val or
    test data; its classes must be the run's.
    ``latency`` (:func:`compress.bench.latency_ms`): times a latency budget and adds the latency column.
    ``loggers``: :mod:`compress.track` loggers or a :class:`~compress.track.Tracker` (finished here unless it is
    ``keep_open``: ``compress prune`` logs its figure first).
    Raises FileNotFoundError for a missing run, FileExistsError for an existing ``out`` (unless ``overwrite``),
    ValueError as :func:`compress.prune.prune` does.
    """
    from compress.track import Tracker
    from compress.train import Run, TrainConfig, evaluate, fit, load_run
    from compress.train.fitting import log_run
    from compress.train.runs import write_run

    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and not overwrite:
        raise FileExistsError(f"--out {out_path} exists (add --overwrite to replace it)")
    src = load_run(path)
    data = src.data() if data is None else _given_data(data, src)
    split = data.split()
    score = lambda m: evaluate(m, split, normalizer=src.normalizer)["acc"]  # noqa: E731
    base = {**dataclasses.asdict(src.config), **dict(train or {})}
    tune_config = TrainConfig.from_dict({**base, "epochs": max(1, config.finetune_epochs), "seed": config.seed})
    runs: list[Run] = []
    tracker = loggers if isinstance(loggers, Tracker) else Tracker(loggers or ())
    tracker.start(out_path.name if out_path is not None else f"{Path(path).name}-pruned",
                  {"source": str(Path(path).resolve()), "prune": config.to_dict(),
                   "train": dataclasses.asdict(tune_config)})
    owner = not tracker.keep_open   # a caller's open tracker is the caller's to finish
    tracker.keep_open = True         # the fits below log their epochs only; the run is finished once, below

    streamed = is_torch_data(data)

    def finetune(model, step):
        runs.append(fit(model, data, tune_config, progress=progress, loggers=tracker if tracker else None,
                        normalizer=src.normalizer if streamed else None))
        return runs[-1].model

    result = prune(src.model, config, data=data, normalizer=src.normalizer, evaluate=score, latency=latency,
                   finetune=finetune if config.finetune_epochs else None)
    run = runs[-1] if runs else _untrained_run(src, result, data, split)
    run.info["prune"] = {"source": str(Path(path)), "config": config.to_dict(), **result.to_dict()}
    if out_path is not None:
        write_run(run, out_path, overwrite)
    log_run(tracker, run, finish=False)
    if owner:
        tracker.keep_open = False
        tracker.finish(final_metrics(result, run))
    return result, run


def _given_data(data: Any, src: Any) -> Any:
    """``data=`` checked against the run: a bundle or streamed data of the run's classes (streamed data is checked
    item by item here, before any pruning)."""
    from compress.data.bundle import DataBundle
    from compress.data.torch_data import as_torch_data

    if is_torch_data(data):
        data = as_torch_data(data).with_num_classes(len(src.class_names))
        data.prepare(src.config.batch_size, statistics=False)   # the run's own normalization is used
    elif not isinstance(data, DataBundle):
        raise TypeError(f"prune_run: data must be a DataBundle, a torch Dataset/DataLoader or TorchData, got "
                        f"{type(data).__name__}")
    if data.num_classes != len(src.class_names):
        raise ValueError(f"prune_run: the data has {data.num_classes} classes, run {src.path} {len(src.class_names)}")
    return data


def final_metrics(result: PruneResult, run) -> dict[str, Any]:
    """What a tracked pruning run ends with: the fine-tuned run's metrics and the pruned model's quantities
    (``pruned_param_count``, ``pruned_macs``, ``pruned_size_bytes``, ``pruned_acc``, ...)."""
    return {**run.metrics, **{f"pruned_{k}": v for k, v in (result.after or {}).items()}}


def _untrained_run(src, result: PruneResult, data, split):
    """A run for a pruned model that was not fine-tuned: no history, the metrics of the pruned weights."""
    from compress.train import Run, evaluate
    from compress.train.runs import config_json

    metrics: dict[str, Any] = {"best_epoch": 0, "epochs_run": 0, "train_seconds": 0.0, "train_images_per_s": None}
    for name, s in (("val", data.val), ("test", data.test)):
        ev = evaluate(result.model, s, normalizer=src.normalizer) if s is not None and len(s) and s.labeled else None
        metrics.update({f"{name}_loss": ev["loss"] if ev else None, f"{name}_acc": ev["acc"] if ev else None,
                        f"{name}_n": ev["n"] if ev else 0})
    run = Run(model=result.model, config=src.config, history=[], metrics=metrics, data_source=data.source,
              data_options=dict(data.options), class_names=data.class_names, normalizer=src.normalizer,
              card=getattr(result.model, "card", None))
    run.info = config_json(run, data, bool(src.info.get("train", {}).get("flip_resolved", False)),
                           src.info.get("teacher"))
    return run
