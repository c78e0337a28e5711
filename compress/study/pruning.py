"""Liu et al. 2019 ("Rethinking the Value of Network Pruning") at each parameter budget, as a sweep option.

``compress sweep --methods scale,prune,prune-scratch`` compares, at each budget and seed, with the same total
epochs ``E`` (``SweepConfig.epochs``) seen by the final weights:

* ``scale``: the family scaled to the budget (``compress.models.scaling.fit``) and trained from scratch for
  ``E`` epochs: the sweep's own runs (``results.json``, the first scaling policy, variant ``full``);
* ``prune``: a larger model of the family (``source_factor`` times the largest budget) trained ``E // 2`` epochs,
  pruned to the budget (:func:`compress.prune.prune`, ``max_params``) and fine-tuned the other ``E - E // 2``;
* ``prune-scratch``: the pruned architecture (its card) trained from random weights for ``E`` epochs.

Folder (beside the sweep's)::

    pruning/sources/FAMILY-sSEED/    the larger model's run folder, shared by every budget of that seed
    pruning/runs/ID/                 each prune / prune-scratch run (ID: family-budget-method-sSEED)
    pruning/records/ID.json          one finished run's record (the source of truth; resumable like the sweep)
    pruning.json                     {"format", "config", "methods", "records"}: scale records copied from
                                     results.json next to the pruning ones
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from compress import _io
from compress.study.sweep import SweepConfig, run_sweep

__all__ = ["PRUNE_METHODS", "PRUNING_FORMAT", "run_pruning_study", "load_pruning"]

PRUNE_METHODS = ("scale", "prune", "prune-scratch")
PRUNING_FORMAT = "compress.prune-study/1"


def _check_methods(methods) -> tuple[str, ...]:
    methods = tuple(methods)
    bad = [m for m in methods if m not in PRUNE_METHODS]
    if bad or not methods:
        raise ValueError(f"sweep: methods must be among {', '.join(PRUNE_METHODS)}, got {', '.join(methods) or 'none'}")
    return methods


def _train(model, bundle, config: SweepConfig, seed: int, epochs: int, out: Path):
    from compress.train import TrainConfig, fit

    settings = config.train_settings(seed, {"epochs": epochs})
    return fit(model, bundle, TrainConfig.from_dict(settings), out=out, overwrite=True, progress=False)


def _source(family: str, seed: int, config: SweepConfig, bundle, root: Path, factor: float):
    """The larger model of ``family`` for ``seed``, trained ``E // 2`` epochs (read back when already done)."""
    import torch

    from compress.models import create, scaling
    from compress.train import load_run

    path = root / "sources" / f"{family}-s{seed}"
    if (path / "checkpoint.pt").exists():
        return load_run(path)
    kw = dict(in_chans=bundle.in_chans, input_size=bundle.input_size, num_classes=bundle.num_classes)
    if config.channel_divisor is not None:
        kw["channel_divisor"] = config.channel_divisor
    sized = scaling.fit(family, max_params=factor * max(config.budgets), **kw)
    torch.manual_seed(seed)
    return _train(create(**sized.build_args), bundle, config, seed, config.epochs // 2, path)


def _record(run_id: str, family: str, budget: int, method: str, seed: int, run, seconds: float,
            source_params: int, root: Path) -> dict:
    from compress.profile import profile

    model = run.model.cpu().eval()
    m = run.metrics
    return {"run_id": run_id, "family": family, "budget": budget, "method": method, "seed": seed,
            "param_count": sum(p.numel() for p in model.parameters()),
            "macs": profile(model, run.card.input_shape, execute="meta", serialize=False).macs,
            "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "epochs": len(run.history),
            "train_seconds": round(seconds, 3), "source_param_count": source_params,
            "run_dir": os.path.relpath(run.path, root)}


def _prune_point(family: str, budget: int, seed: int, source, config: SweepConfig, bundle, root: Path,
                 methods: tuple[str, ...], done: set[str], importance: str) -> list[dict]:
    import torch

    from compress.prune import prune

    source_params = sum(p.numel() for p in source.model.parameters())
    tune = config.epochs - config.epochs // 2
    start = time.perf_counter()
    pruned = prune(source.model, max_params=budget, importance=importance).model
    out = []
    if "prune" in methods and f"{family}-{budget}-prune-s{seed}" not in done:
        run_id = f"{family}-{budget}-prune-s{seed}"
        run = _train(pruned, bundle, config, seed, tune, root / "runs" / run_id)
        out.append(_record(run_id, family, budget, "prune", seed, run, time.perf_counter() - start, source_params,
                           root))
    if "prune-scratch" in methods and f"{family}-{budget}-prune-scratch-s{seed}" not in done:
        run_id = f"{family}-{budget}-prune-scratch-s{seed}"
        torch.manual_seed(seed)
        start = time.perf_counter()
        run = _train(pruned.card.create(), bundle, config, seed, config.epochs, root / "runs" / run_id)
        out.append(_record(run_id, family, budget, "prune-scratch", seed, run, time.perf_counter() - start,
                           source_params, root))
    return out


def _scale_records(results: dict, config: SweepConfig) -> list[dict]:
    policy = config.policies[0]
    return [{**{k: r.get(k) for k in ("run_id", "family", "budget", "seed", "param_count", "macs", "val_acc",
                                       "test_acc", "epochs", "train_seconds", "run_dir")}, "method": "scale"}
            for r in results["records"] if r.get("policy", "width") == policy and r["variant"] == "full"]


def run_pruning_study(config: SweepConfig, out: str | os.PathLike, *, methods=PRUNE_METHODS,
                      source_factor: float = 4.0, importance: str = "l1", executor: Any = None,
                      overwrite: bool = False, progress: Callable[[str], None] | None = print) -> dict:
    """Run (or resume) the sweep in ``out`` and the pruning comparison beside it; returns ``pruning.json``'s dict.

    ``methods``: any of :data:`PRUNE_METHODS` (``scale`` is the sweep itself and always runs: the other two are
    compared with it). ``source_factor``: the larger model's parameters as a multiple of the largest budget.
    ``importance``: how the larger model is pruned (``compress.prune``'s importances).
    Raises ValueError for unknown methods, fewer than 2 epochs with ``prune`` (half trains, half fine-tunes).
    """
    methods = _check_methods(methods)
    if "prune" in methods and config.epochs < 2:
        raise ValueError("sweep: --methods prune needs --epochs >= 2 (half to train the larger model, half to "
                         "fine-tune the pruned one)")
    if not source_factor > 1:
        raise ValueError(f"sweep: source_factor must be > 1, got {source_factor!r}")
    from compress.study.lock import folder_lock

    results = run_sweep(config, out, executor=executor, overwrite=overwrite, progress=progress)
    with folder_lock(out):      # one writer at a time, as the sweep itself
        return _compare(config, Path(out), results, methods, source_factor, importance, overwrite, progress)


def _compare(config: SweepConfig, out: Path, results: dict, methods: tuple[str, ...], source_factor: float,
             importance: str, overwrite: bool, progress) -> dict:
    from compress.study.sweep import _load_data, read_records   # the sweep's one data cache

    root = out / "pruning"
    settings = {"source_factor": source_factor, "importance": importance}
    old = load_pruning(out)
    if old is not None and (old["config"], old.get("settings")) != (config.to_dict(), settings):
        if not overwrite:
            raise ValueError(f"{out}/pruning.json holds a comparison with other settings; use another --out, or "
                             "pass --overwrite to start it over")
        shutil.rmtree(root, ignore_errors=True)
    bundle = _load_data(config.data, config.data_options)
    records = {r["run_id"]: r for r in read_records(root)}
    say = progress or (lambda s: None)
    todo = [m for m in methods if m != "scale"]
    for family in config.families if todo else ():
        for seed in range(config.seeds):
            wanted = {f"{family}-{b}-{m}-s{seed}": b for b in config.budgets for m in todo}
            if set(wanted) <= set(records):
                continue
            source = _source(family, seed, config, bundle, root, source_factor)
            for budget in config.budgets:
                if all(f"{family}-{budget}-{m}-s{seed}" in records for m in todo):
                    continue
                try:
                    point = _prune_point(family, budget, seed, source, config, bundle, root, tuple(todo),
                                         set(records), importance)
                except ValueError as exc:    # a budget below what pruning the larger model can reach
                    say(f"skip {family} at {budget:,} params (seed {seed}): {exc}")
                    continue
                for r in point:
                    _io.write_json(root / "records" / f"{r['run_id']}.json", r)
                    records[r["run_id"]] = r
                    acc = r["test_acc"] if r["test_acc"] is not None else r["val_acc"]
                    say(f"{r['run_id']}: {r['param_count']:,} params (from {r['source_param_count']:,}), "
                        f"acc {acc:.3f}, {r['train_seconds']:.1f} s")
    return _write(out, config, settings, methods, _scale_records(results, config) + list(records.values()))



def _write(out: Path, config: SweepConfig, settings: dict, methods: tuple[str, ...], records: list[dict]) -> dict:
    order = lambda r: (r["family"], r["budget"], PRUNE_METHODS.index(r["method"]), r["seed"])  # noqa: E731
    doc = {"format": PRUNING_FORMAT, "config": config.to_dict(), "settings": settings, "methods": list(methods),
           "records": sorted((r for r in records if r["method"] in methods), key=order)}
    _io.write_json(out / "pruning.json", doc)
    return doc


def load_pruning(sweep_dir: str | os.PathLike) -> dict | None:
    """``pruning.json`` of a sweep folder, or None when the sweep ran without ``--methods``."""
    path = Path(sweep_dir) / "pruning.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("format") != PRUNING_FORMAT:
        raise ValueError(f"{path}: format {doc.get('format')!r}, expected {PRUNING_FORMAT!r}")
    return doc
