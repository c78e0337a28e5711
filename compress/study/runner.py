"""The one task runner: :class:`TaskRunner` trains any study task (a sweep's
:class:`~compress.study.points.PointTask` or the pruning comparison's
:class:`~compress.study.pruning_tasks.PruneTask`) and returns its records, one per seed.

It is what a study hands its executor as ``fn`` (:mod:`compress.study.executors`): picklable, carrying the data
bundles so that an executor ships them once per worker (Ray: one object in its object store) and workers never
read the data source themselves. A task that raises comes back as failed records instead of stopping the study;
executors call :meth:`TaskRunner.failed` too for a task they lost (its worker or node died, retries spent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from compress.study.data_cache import load_data
from compress.study.tasks import Task
from compress.track import RunTracking

__all__ = ["TaskRunner", "execute", "train_seeds"]


@dataclass(frozen=True)
class TaskRunner:
    """Runs a task with the study's data: ``runner(task)`` -> the task's records, or its failed records when it
    raised."""

    bundle: Any = None          # a DataBundle for the study's data options; None: each worker loads task.data
    resized: tuple = ()         # ((input_size, DataBundle), ...) for points whose policy chose another resolution
    track: RunTracking | None = None   # each run a tracked run PREFIX/RUN_ID (compress.track)

    def __call__(self, task: Task) -> list[dict]:
        try:
            return execute(task, self.bundle_for(task), track=self.track)
        except Exception as exc:   # a task that fails on its own (a bad setting): recorded, the others go on
            return self.failed(task, exc)

    def bundle_for(self, task: Task) -> Any:
        """The bundle this runner carries for ``task``'s data options, or None (:func:`execute` loads it)."""
        size = task.data_options.get("input_size")
        if size is None or (self.bundle is not None and size == self.bundle.input_size):
            return self.bundle
        return dict(self.resized).get(size)

    def failed(self, task: Task, error: BaseException | str) -> list[dict]:
        """The failed records of ``task``'s runs, one per seed, each with ``"error"`` (``error``'s type and
        message, or ``error`` itself when it is a string)."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return [task.failed_record(seed, text) for seed in task.seeds]


def execute(task: Task, bundle: Any = None, *, track: RunTracking | None = None) -> list[dict]:
    """Train ``task``'s seeds together and return their records. ``bundle``: the task's data, already loaded
    (default: ``task.data`` loaded here with ``task.data_options``, cached per process). ``track``: as
    :func:`train_seeds`'. Module-level so that worker processes can run it."""
    bundle = bundle if bundle is not None else load_data(task.data, task.data_options)
    runs, seconds = train_seeds(task, bundle, track=track)
    return [task.record(seed, run, seconds, bundle) for seed, run in zip(task.seeds, runs)]


def train_seeds(task: Task, bundle: Any, *, track: RunTracking | None = None) -> tuple[list, float]:
    """Train ``task``'s seeds together (:func:`compress.train.fit_many`) into its run folders: each seed's model is
    ``rebuild(task.card)`` after ``torch.manual_seed(seed)``, then given ``task.states[i]`` when the task has
    states. Returns the runs and the training seconds per run. ``track``: each seed's run is a tracked run
    ``PREFIX/RUN_ID`` (:class:`compress.track.RunTracking`: the task's labels, seed and settings as parameters, its
    epochs, final metrics and run folder; csv in the run folder)."""
    import torch

    from compress.models import rebuild
    from compress.train import TrainConfig, fit_many

    members = []
    for i, seed in enumerate(task.seeds):
        torch.manual_seed(seed)
        model = rebuild(task.card)
        if task.states:
            model.load_state_dict(task.states[i])
        members.append(model)
    trackers = None
    if track is not None:
        trackers = [track.start(run_dir, task.run_id(seed),
                                {**task.labels(), "seed": seed, "data": task.data, "train": task.train})
                    for seed, run_dir in zip(task.seeds, task.run_dirs)]
    start = time.perf_counter()
    runs = fit_many(members, bundle, TrainConfig.from_dict(task.train), seeds=list(task.seeds),
                    outs=list(task.run_dirs), overwrite=True, progress=False, curves=False,   # no figure per run
                    loggers=trackers)
    return runs, (time.perf_counter() - start) / len(runs)
