"""The units of work of the pruning comparison (:mod:`compress.study.pruning`), study tasks like the sweep's points
(:class:`~compress.study.tasks.Task`), so that the same runner and executors run them: in this process, a local
process pool, or Ray (:mod:`compress.study.executors`).

A :class:`PruneTask` is one group of seeds that train together as one stacked model
(:func:`compress.train.fit_many`): the larger source models of a family (method ``source``,
:func:`source_tasks`), or one (family, budget, method) for ``prune`` (start from the pruned weights, shipped in
the task) and ``prune-scratch`` (the pruned architecture from random weights) (:func:`prune_tasks`). The driver
prunes (seconds); workers only train.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from compress.models.card import ModelCard, card_of
from compress.models.sources import source_label
from compress.study.config import SweepConfig
from compress.study.tasks import Task, run_id

__all__ = ["PruneTask", "prune_run_id", "source_tasks", "prune_tasks"]


@dataclass(frozen=True, kw_only=True)
class PruneTask(Task):
    """One group of seeds of one method. ``states`` (``prune``): per seed, the pruned weights the run starts
    from."""

    family: str
    budget: int | None            # parameters; None for the source models
    method: str                   # "source", "prune" or "prune-scratch"

    @staticmethod
    def make_id(family: str, budget: int | None, method: str) -> str:
        """A task id: ``family-budget-method``, or ``family-source`` for the larger models seeds prune from."""
        label = source_label(family)
        return f"{label}-source" if method == "source" else f"{label}-{budget}-{method}"

    @property
    def cost(self) -> float:
        # parameters x epochs x seeds; a source is the largest model
        return (self.budget or 10 ** 12) * self.train["epochs"] * len(self.seeds)

    def labels(self) -> dict:
        return {"family": self.family, "budget": self.budget, "method": self.method}

    def record(self, seed: int, run: Any, seconds: float, bundle: Any) -> dict:
        from compress.profile import profile

        model = run.model.cpu().eval()
        m = run.metrics
        return {"run_id": self.run_id(seed), **self.labels(), "seed": seed,
                "param_count": sum(p.numel() for p in model.parameters()),
                "macs": profile(model, self.card.input_shape, execute="meta", serialize=False).macs,
                "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "best_epoch": m.get("best_epoch"),
                "epochs": len(run.history), "max_epochs": self.train["epochs"], "converged": m.get("converged"),
                "train_seconds": round(seconds, 3),
                # relative to the sweep folder; the last two parts survive RayExecutor's relocation
                "run_dir": os.path.join("pruning", os.path.relpath(run.path, Path(run.path).parent.parent))}


def prune_run_id(family: str, budget: int | None, method: str, seed: int) -> str:
    """The run id of one seed of (family, budget, method): :func:`~compress.study.tasks.run_id` of its task."""
    return run_id(PruneTask.make_id(family, budget, method), seed)


def _task(config: SweepConfig, root: Path, family: str, budget: int | None, method: str, seeds: list[int],
          card: ModelCard, states: list, epochs: int, options: dict) -> PruneTask:
    task_id = PruneTask.make_id(family, budget, method)
    return PruneTask(task_id=task_id, family=family, budget=budget, method=method, seeds=tuple(seeds), card=card,
                     states=tuple(states), train=config.train_settings(seeds[0], {"epochs": epochs}),
                     data=config.data, data_options=options,
                     run_dirs=tuple(str(root / "runs" / run_id(task_id, s)) for s in seeds))


def source_tasks(config: SweepConfig, settings: dict, bundle: Any, options: dict, root: Path,
                 needs: list[tuple[str, int]]) -> list[PruneTask]:
    """One task per family in ``needs`` ((family, seed) pairs): its seeds' larger models (``source_factor`` x the
    largest budget, the sweep's first policy), trained ``E // 2`` epochs."""
    from compress.budget import Budget
    from compress.models import scaling

    from compress.models import create
    from compress.models.sources import is_external

    kw = dict(config.model_options(bundle), policy=config.policies[0], min_channels=config.min_channels)
    tasks = []
    for family in sorted({f for f, _ in needs}):
        args = config.family_args(family)
        if is_external(family) and "width_arg" not in args:   # no width to scale: pruning starts from it as given
            shape = {k: v for k, v in kw.items() if k in ("num_classes", "in_chans", "input_size")}
            card = card_of(create(family, **shape, **args))
            assert card is not None   # create() gives every model its card
        else:
            card = ModelCard(scaling.scale_to(family, Budget(max_params=settings["source_factor"] * max(config.budgets)),
                                              **kw, **args).build_args)
        seeds = [s for f, s in needs if f == family]
        tasks.append(_task(config, root, family, None, "source", seeds, card, [], config.epochs // 2, options))
    return tasks


def prune_tasks(config: SweepConfig, settings: dict, options: dict, root: Path, missing: list[tuple],
                sources: dict[str, dict], skipped: list[dict], say: Callable[[str], None]) -> list[PruneTask]:
    """Prune each seed's source (its record in ``sources``, by run id) to each budget of ``missing`` ((family,
    budget, method, seed) still to run), here in the driver (seconds), and group the runs into tasks: one per
    (family, budget, method) and pruned architecture, since seeds pruned alike train together. A budget that
    pruning cannot reach is appended to ``skipped``."""
    groups: dict[tuple, list] = {}
    for family, budget in sorted({(f, b) for f, b, _, _ in missing}):
        for seed in sorted({s for f, b, _, s in missing if (f, b) == (family, budget)}):
            source = sources.get(prune_run_id(family, None, "source", seed))
            if source is None:
                continue            # its source failed (listed in failed); a rerun tries it again
            pruned = _prune(root, source, budget, settings, skipped, say)
            if pruned is None:
                continue
            card, weights = pruned
            for method in sorted(m for f, b, m, s in missing if (f, b, s) == (family, budget, seed)):
                group = groups.setdefault((family, budget, method, json.dumps(card.build_args, sort_keys=True)),
                                          [card, [], []])
                group[1].append(seed)
                group[2].append(weights)
    tasks = []
    for (family, budget, method, _), (card, seeds, weights) in groups.items():
        fine_tune = method == "prune"
        epochs = config.epochs - config.epochs // 2 if fine_tune else config.epochs
        tasks.append(_task(config, root, family, budget, method, seeds, card, weights if fine_tune else [], epochs,
                           options))
    return tasks


def _prune(root: Path, source: dict, budget: int, settings: dict, skipped: list[dict],
           say: Callable[[str], None]) -> tuple[ModelCard, dict] | None:
    """``source``'s trained model pruned to ``budget`` parameters: its card and weights; None (and an entry in
    ``skipped``) when pruning cannot reach the budget."""
    from compress.budget import Budget
    from compress.prune import prune
    from compress.train import load_run

    try:
        model = prune(load_run(root / "runs" / source["run_id"]).model, budget=Budget(max_params=budget),
                      importance=settings["importance"]).model
    except ValueError as exc:    # a budget below what pruning the larger model can reach
        skipped.append({"family": source["family"], "budget": budget, "seed": source["seed"], "reason": str(exc)})
        say(f"skip {source['family']} at {budget:,} params (seed {source['seed']}): {exc}")
        return None
    card = card_of(model)
    assert card is not None   # a run's model keeps its card through pruning
    return card, {k: v.detach().clone() for k, v in model.state_dict().items()}
