"""Fused multi-seed training: K models of one architecture trained as one computation.

``fit_many(models, data, config, seeds=[0, 1, 2], outs=[...])`` trains the K models stacked into one
(:mod:`compress.train.stack`: grouped convolutions, stacked BatchNorm, batched linear layers), each member with
its own seed for data order, augmentation and BatchNorm recalibration, its own loss, best epoch and early
stopping, and returns one :class:`~compress.train.runs.Run` per member (one run folder each with ``outs``).
BatchNorm, EMA, precise-BN recalibration and distillation work as in :func:`~compress.train.fit`; a member's
first steps match the same seed trained alone within float tolerance (dropout masks differ: one global RNG).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

from torch import nn

from compress.data.bundle import DataBundle
from compress.data.torch_data import TorchData, is_torch_data
from compress.train.config import TrainConfig
from compress.train.fitting import train_members
from compress.train.hooks import Regularizer
from compress.train.runs import Run

__all__ = ["fit_many"]


def fit_many(models: Sequence[nn.Module], data: DataBundle | TorchData | str, config: TrainConfig | None = None, *,
             seeds: Sequence[int] | None = None, outs: Sequence[str | os.PathLike | None] | None = None,
             overwrite: bool = False, teacher: nn.Module | Run | str | os.PathLike | None = None,
             progress: bool | Callable[[dict], None] | None = None,
             regularizer: Regularizer | None = None, resume: bool = False,
             loggers: Sequence | None = None, curves: bool = True) -> list[Run]:
    """Train ``models`` (same architecture, different initial weights) together; returns their runs in order.

    ``seeds``: one per model (default ``config.seed, config.seed + 1, ...``): member ``k`` trains as
    ``fit(models[k], data, replace(config, seed=seeds[k]))`` would. ``outs``: a run folder per model (or None).
    ``progress`` as in ``fit``; a callable's rows carry the member's ``seed``. ``regularizer`` as in ``fit``,
    given the stacked model (a regularizer summed over layers is then each member's own).
    Models that cannot be stacked (a forward compress does not know to act per channel: most models from a
    file, torchvision or timm) train one after another instead, each as ``fit`` would train it.
    ``resume``: continue killed stacked training from the resume state beside ``outs[0]``
    (:mod:`compress.train.resume`); refused for models trained one after another.
    ``loggers``: one entry per model (a :class:`compress.track.Tracker`, a list of loggers, or None), as ``fit``'s.
    ``curves``: write ``curves.png`` into each run folder (sweeps pass False: a figure per run costs).
    Streamed data (a torch ``Dataset``, ``DataLoader`` or :class:`~compress.data.torch_data.TorchData`) cannot be
    stacked (each member reads its own order of the stream): the models train one after another, as ``fit``
    would train each (not resumable with several seeds).
    Raises ValueError for no models, mismatched lengths or repeated seeds.
    """
    models = list(models)
    config = config or TrainConfig()
    if not models:
        raise ValueError("fit_many: no models given")
    if not all(isinstance(m, nn.Module) for m in models):
        raise TypeError("fit_many: models must be nn.Modules")
    if len({id(m) for m in models}) != len(models):
        raise ValueError("fit_many: the same model object is given twice; create one model per seed")
    seeds = list(range(config.seed, config.seed + len(models))) if seeds is None else list(seeds)
    outs = [None] * len(models) if outs is None else list(outs)
    if len(seeds) != len(models) or len(outs) != len(models):
        raise ValueError(f"fit_many: {len(models)} models need as many seeds and outs, got {len(seeds)} seeds "
                         f"and {len(outs)} outs")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"fit_many: seeds must be distinct ints, got {seeds}")
    given = [str(o) for o in outs if o is not None]
    if len(set(given)) != len(given):
        raise ValueError("fit_many: two members share a run folder")
    streamed = is_torch_data(data)
    if len(models) > 1 and (streamed or not _stackable(models[0])):
        why = "streamed data cannot be stacked" if streamed else f"{type(models[0]).__name__} cannot be stacked"
        if resume:
            raise ValueError(f"resume: {why}, so its {len(models)} seeds train one after another, which does not "
                             "resume; train them again (--overwrite)")
        tracks = [None] * len(models) if loggers is None else list(loggers)
        if len(tracks) != len(models):
            raise ValueError(f"fit_many: {len(models)} models need as many loggers entries, got {len(tracks)}")
        return [run for m, seed, out, track in zip(models, seeds, outs, tracks)
                for run in train_members([m], data, config, seeds=[seed], outs=[out], overwrite=overwrite,
                                         teacher=teacher, progress=progress, stack=False, regularizer=regularizer,
                                         loggers=[track], curves=curves)]
    return train_members(models, data, config, seeds=seeds, outs=outs, overwrite=overwrite, teacher=teacher,
                         progress=progress, stack=len(models) > 1, regularizer=regularizer, resume=resume,
                         loggers=loggers, curves=curves)


def _stackable(model: nn.Module) -> bool:
    """Whether :func:`~compress.train.stack.stack_models` can stack copies of ``model`` (tried on one copy)."""
    from compress.train.stack import stack_models

    try:
        stack_models([model])
    except ValueError:
        return False
    return True
