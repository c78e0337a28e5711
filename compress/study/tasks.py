"""The units of work of a study: a :class:`Task` is a group of seeds that train together as one stacked model
(:func:`compress.train.fit_many`), self-contained and picklable, which is what an executor ships to a worker.

Every task knows its seeds and their run folders, the id of each run (:func:`run_id`, the one place run ids are
built), the fields that name it in its records (:meth:`Task.labels`), how a trained run becomes its record
(:meth:`Task.record`) and what its failed record holds (:meth:`Task.failed_record`).
:class:`~compress.study.runner.TaskRunner` runs any of them.

Two kinds: :class:`~compress.study.points.PointTask`, one point of a sweep, and
:class:`~compress.study.pruning_tasks.PruneTask`, one group of runs of the pruning comparison.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, TypeVar

from compress.models.card import ModelCard

__all__ = ["Task", "run_id", "longest_first"]


def run_id(task_id: str, seed: int) -> str:
    """The id of one run: its task's id and its seed, ``TASK-sSEED`` (``cnn-5000-width-full-s0``,
    ``mlp-source-s1``). Record files, run folders and resumes all name a run by it."""
    return f"{task_id}-s{seed}"


@dataclass(frozen=True, kw_only=True)
class Task(ABC):
    """What every unit of work holds: the seeds still to run, one run folder per seed (``RayExecutor`` relocates
    ``run_dirs``), the architecture they train, and where their data come from."""

    task_id: str                  # names the group; each run is run_id(task_id, seed)
    seeds: tuple[int, ...]
    card: ModelCard               # the architecture every seed trains
    train: dict                   # TrainConfig settings (seed: the first seed)
    data: str                     # the data source (compress.data.load)
    data_options: dict            # its load options
    run_dirs: tuple[str, ...]     # one run folder per seed
    states: tuple = ()            # () (random weights: torch.manual_seed(seed), then rebuild(card)) or per seed the
                                  # state_dict the run starts from

    def run_id(self, seed: int) -> str:
        return run_id(self.task_id, seed)

    @property
    @abstractmethod
    def cost(self) -> float:
        """How long the task takes, relative to other tasks of its kind (executors get the longest first)."""

    @abstractmethod
    def labels(self) -> dict:
        """The fields that name the task in each of its records (family, budget, ...), in record order."""

    @abstractmethod
    def record(self, seed: int, run: Any, seconds: float, bundle: Any) -> dict:
        """The record of seed ``seed``'s finished ``run`` (a ``compress.train`` Run) that trained ``seconds`` on
        ``bundle``."""

    def failed_record(self, seed: int, error: str) -> dict:
        """The record of seed ``seed``'s run that did not finish: which run, and ``error`` (type and message)."""
        return {"run_id": self.run_id(seed), **self.labels(), "seed": seed, "error": error}


T = TypeVar("T", bound="Task")


def longest_first(tasks: list[T]) -> list[T]:
    """``tasks`` by decreasing :attr:`Task.cost`, so that workers finish together."""
    return sorted(tasks, key=lambda t: -t.cost)
