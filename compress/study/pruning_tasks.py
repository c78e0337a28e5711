"""The units of work of the pruning comparison (:mod:`compress.study.pruning`), shaped like the sweep's points so
the same executors run them (in this process, a local process pool, or Ray: :mod:`compress.study.executors`).

A :class:`PruneTask` is one group of seeds that train together as one stacked model
(:func:`compress.train.fit_many`): the larger source models of a family (method ``source``), or one
(family, budget, method) for ``prune`` (start from the pruned weights, shipped in the task) and
``prune-scratch`` (the pruned architecture from random weights). The driver prunes (seconds); workers only train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.models.card import ModelCard

__all__ = ["PruneTask", "PruneTrainer", "train_task"]


@dataclass(frozen=True)
class PruneTask:
    """One group of seeds of one method, self-contained and picklable. ``states``: per seed, the weights the
    run starts from (``prune``), or empty (random weights, ``torch.manual_seed(seed)`` before ``rebuild(card)``)."""

    task_id: str                  # "family-budget-method" or "family-source" (+ "-gN" when seeds differ in card)
    family: str
    budget: int | None            # None for the source models
    method: str                   # "source", "prune" or "prune-scratch"
    seeds: tuple[int, ...]
    card: ModelCard               # the architecture every seed of the task trains
    states: tuple                 # () or one state_dict per seed
    train: dict                   # TrainConfig settings (epochs: this method's share)
    data: str
    data_options: dict
    run_dirs: tuple[str, ...]     # one run folder per seed (RayExecutor relocates them)

    def run_id(self, seed: int) -> str:
        return run_id(self.family, self.budget, self.method, seed)


def run_id(family: str, budget: int | None, method: str, seed: int) -> str:
    """``family-budget-method-sSEED``, or ``family-source-sSEED`` for the larger model a seed prunes from."""
    return f"{family}-source-s{seed}" if method == "source" else f"{family}-{budget}-{method}-s{seed}"


def train_task(task: PruneTask, bundle: Any = None) -> list[dict]:
    """Train the task's seeds together; returns one record per seed. Module-level so worker processes run it."""
    from compress.study.sweep import load_data, train_seeds

    bundle = bundle if bundle is not None else load_data(task.data, task.data_options)
    runs, seconds = train_seeds(task, bundle, task.states)
    return [_record(task, seed, run, seconds) for seed, run in zip(task.seeds, runs)]


def _record(task: PruneTask, seed: int, run, seconds: float) -> dict:
    from compress.profile import profile

    model = run.model.cpu().eval()
    m = run.metrics
    return {"run_id": task.run_id(seed), "family": task.family, "budget": task.budget, "method": task.method,
            "seed": seed, "param_count": sum(p.numel() for p in model.parameters()),
            "macs": profile(model, task.card.input_shape, execute="meta", serialize=False).macs,
            "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "best_epoch": m.get("best_epoch"),
            "epochs": len(run.history), "max_epochs": task.train["epochs"], "converged": m.get("converged"),
            "train_seconds": round(seconds, 3),
            # relative to the sweep folder; the last two parts survive RayExecutor's relocation
            "run_dir": os.path.join("pruning", os.path.relpath(run.path, Path(run.path).parent.parent))}


@dataclass(frozen=True)
class PruneTrainer:
    """What the comparison hands its executor as ``fn``: :func:`train_task` with the sweep's data bundle (shipped
    once per worker). A task that raises comes back as failed records, as the sweep's ``Trainer`` does."""

    bundle: Any = None

    def __call__(self, task: PruneTask) -> list[dict]:
        try:
            return train_task(task, self.bundle)
        except Exception as exc:   # one bad task is recorded; the others go on
            return self.failed(task, exc)

    def failed(self, task: PruneTask, error: BaseException | str) -> list[dict]:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return [{"run_id": task.run_id(seed), "family": task.family, "budget": task.budget, "method": task.method,
                 "seed": seed, "error": text} for seed in task.seeds]
