"""A sweep's points: :class:`PointTask` (one point, family x budget x policy x variant, with the seeds still to
run), every point a config asks for (:func:`points`), each family sized to each budget along each policy
(:func:`size_points`, cached in ``sizing.json``), and the point tasks a sweep folder still has to train
(:func:`point_tasks`)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from compress import _io
from compress.models.card import ModelCard
from compress.models.sources import source_label
from compress.study.config import ABLATIONS, SweepConfig
from compress.study.tasks import Task, run_id

__all__ = ["PointTask", "Point", "points", "run_ids", "size_points", "point_tasks", "widening_tasks",
           "seeds_for_target"]


@dataclass(frozen=True, kw_only=True)
class PointTask(Task):
    """One point of a sweep (family, budget, policy, variant) with the seeds still to run."""

    family: str
    budget: int                   # parameters
    policy: str                   # the scaling policy that sized ``card``
    variant: str                  # "full" or "no_<ablation>"
    macs: int                     # from the sizing (batch 1)

    @staticmethod
    def make_id(family: str, budget: int, policy: str, variant: str) -> str:
        """A point's task id, ``family-budget-policy-variant``."""
        return f"{source_label(family)}-{budget}-{policy}-{variant}"

    @property
    def cost(self) -> float:
        return (self.macs + 200_000) * len(self.seeds)   # MACs, plus a floor for the per-image data work

    def labels(self) -> dict:
        return {"family": self.family, "budget": self.budget, "policy": self.policy, "variant": self.variant}

    def record(self, seed: int, run: Any, seconds: float, bundle: Any) -> dict:
        from compress.export.artifact import serialize

        model = run.model.cpu().eval()
        sizes = {codec: len(serialize(model, codec=codec, format="npz")) for codec in ("fp32", "fp16", "int8")}
        m = run.metrics
        args = self.card.build_args
        return {
            "run_id": self.run_id(seed), **self.labels(), "seed": seed, "width_mult": args["width_mult"],
            "depth_mult": args.get("depth_mult", 1.0), "input_size": args.get("input_size"),
            "param_count": sum(p.numel() for p in model.parameters()), "macs": self.macs,
            "bytes_fp32": sizes["fp32"], "bytes_fp16": sizes["fp16"], "bytes_int8": sizes["int8"],
            "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "best_epoch": m.get("best_epoch"),
            "epochs": len(run.history), "converged": m.get("converged"), "members": m.get("members"),
            "train_seconds": round(seconds, 3), "latency_ms": None,
            "n_val": len(bundle.val) if bundle.val is not None else 0,
            "n_test": len(bundle.test) if bundle.test is not None else 0,
            # relative to the sweep folder; the last two parts survive RayExecutor's relocation
            "run_dir": os.path.relpath(run.path, Path(run.path).parent.parent),
        }


class Point(NamedTuple):
    family: str
    budget: int
    policy: str
    variant: str          # "full" or "no_<ablation>"
    overrides: dict       # TrainConfig settings of the variant (ABLATIONS)

    @property
    def task_id(self) -> str:
        return PointTask.make_id(self.family, self.budget, self.policy, self.variant)


def points(config: SweepConfig) -> list[Point]:
    """Every point of the sweep: each family x policy x budget, then the ablation variants."""
    found = [Point(f, b, p, "full", {}) for f in config.families for p in config.policies for b in config.budgets]
    family, budget, policy = config.ablation_point
    found += [Point(family, budget, policy, f"no_{a}", ABLATIONS[a]) for a in config.ablate]
    return found


def run_ids(config: SweepConfig) -> set[str]:
    """The id of every run the sweep may have: each point's seeds, up to ``config.seed_cap`` (the seeds an
    interval target may add)."""
    return {run_id(p.task_id, s) for p in points(config) for s in range(config.seed_cap)}


def size_points(config: SweepConfig, out: Path, bundle: Any) -> dict:
    """family -> policy -> budget -> the sized model (``Scaled.to_dict()``, or ``{"skipped": reason}`` for a budget
    the family cannot reach); cached in ``out/sizing.json``, so a resumed sweep sizes only what is new."""
    from compress.budget import Budget
    from compress.models import scaling

    path = out / "sizing.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    kw = config.model_options(bundle)
    changed = False
    for family, budget, policy in sorted({p[:3] for p in points(config)}):
        entry = cached.setdefault(family, {}).setdefault(policy, {})
        if str(budget) in entry:
            continue
        try:
            entry[str(budget)] = scaling.scale_to(family, Budget(max_params=budget), policy=policy,
                                                  min_channels=config.min_channels, **kw,
                                                  **config.family_args(family)).to_dict()
        except ValueError as exc:
            entry[str(budget)] = {"skipped": str(exc)}
        changed = True
    if changed:
        _io.write_json(path, cached)
    return cached


def point_tasks(config: SweepConfig, out: Path, sizing: dict, bundle: Any, options: dict,
                finished: set[str]) -> tuple[list[PointTask], list[dict], int]:
    """The points still to train (each with its seeds that have no record in ``finished``), the points skipped
    (no model of the family fits the budget) and the number of runs the sweep has. ``bundle`` was loaded with
    ``options``."""
    tasks, skipped, total = [], [], 0
    for point in points(config):
        size = sizing[point.family][point.policy][str(point.budget)]
        if "skipped" in size:
            skipped.append({"family": point.family, "budget": point.budget, "policy": point.policy,
                            "variant": point.variant, "reason": size["skipped"]})
            continue
        total += config.seeds + sum(1 for s in range(config.seeds, config.seed_cap)
                                    if run_id(point.task_id, s) in finished)   # seeds a target added
        seeds = tuple(s for s in range(config.seeds) if run_id(point.task_id, s) not in finished)
        if seeds:
            tasks.append(_point_task(config, out, point, seeds, size, bundle, options))
    return tasks, skipped, total


def _point_task(config: SweepConfig, out: Path, point: Point, seeds: tuple[int, ...], size: dict, bundle: Any,
                options: dict) -> PointTask:
    options = dict(options)
    if size["build_args"].get("input_size", bundle.input_size) != bundle.input_size:
        options["input_size"] = size["build_args"]["input_size"]      # the policy chose the resolution
    return PointTask(task_id=point.task_id, family=point.family, budget=point.budget, policy=point.policy,
                     variant=point.variant, seeds=seeds, card=ModelCard(size["build_args"]), macs=size["macs"],
                     train=config.train_settings(seeds[0], point.overrides), data=config.data, data_options=options,
                     run_dirs=tuple(str(out / "runs" / run_id(point.task_id, s)) for s in seeds))


def seeds_for_target(std: float, n: int, *, target: float, cap: int) -> int:
    """The seed count a point with ``n`` seeds and sample standard deviation ``std`` (accuracy, fraction) needs
    for a 95% interval within +-``target`` (fraction): the smallest ``m`` in ``(n, cap]`` with
    ``t(0.975, m-1) * std / sqrt(m) <= target``, else ``cap``; at least ``n + 1`` (with one seed, or a spread
    of 0, nothing estimates it)."""
    from compress.study.stats import t_quantile_975

    for m in range(n + 1, cap + 1):
        if std > 0 and t_quantile_975(m - 1) * std / math.sqrt(m) <= target:
            return m
        if std == 0 and m >= max(n + 1, 3):
            return m
    return cap


def widening_tasks(config: SweepConfig, out: Path, sizing: dict, bundle: Any, options: dict, rows: list[dict],
                   unavailable: set[str]) -> tuple[list[PointTask], list[dict]]:
    """One round of an interval target: the points whose widest accuracy interval (``results.half_width`` of
    their summary row in ``rows``) is wider than ``config.target_halfwidth`` points, each with the seeds it gets
    next (:func:`seeds_for_target`, the lowest seed numbers with no run yet; none for a point with a run in
    ``unavailable``, the runs that failed this time), and the rows of the points wider than the target that cannot get more (at the cap)."""
    from compress.study.results import half_width

    if config.target_halfwidth is None:
        raise ValueError("widening_tasks: the sweep has no interval target (target_halfwidth)")
    target = config.target_halfwidth / 100
    by = {(r["family"], r["budget"], r["policy"], r["variant"]): r for r in rows}
    tasks, capped = [], []
    for point in points(config):
        row = by.get((point.family, point.budget, point.policy, point.variant))
        if not row:
            continue                       # not yet trained
        width = half_width(row)
        if width is None or width <= target + 1e-12 or row["n"] < config.seeds:
            continue                       # met, or not yet trained (or its first seeds failed)
        if any(run_id(point.task_id, s) in unavailable for s in range(config.seed_cap)):
            continue                       # a run of it failed: the next run of the sweep tries it again
        free = [s for s in range(config.seed_cap) if s not in row["seeds"]]
        std = max(row[k]["std"] for k in ("val_acc", "test_acc") if row.get(k))
        count = seeds_for_target(std, row["n"], target=target, cap=config.seed_cap) - row["n"]
        if not free or count <= 0:
            capped.append(row)
            continue
        size = sizing[point.family][point.policy][str(point.budget)]
        tasks.append(_point_task(config, out, point, tuple(free[:count]), size, bundle, options))
    return tasks, capped
