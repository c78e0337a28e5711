"""Liu et al. 2019 ("Rethinking the Value of Network Pruning") at each parameter budget, as a sweep option.

``compress sweep --methods scale,prune,prune-scratch`` compares, at each budget and seed:

* ``scale``: the family scaled to the budget (``compress.models.scaling.scale_to``, the sweep's first policy) and
  trained from scratch: the sweep's own runs (``results.json``, variant ``full``);
* ``prune``: a larger model of the family (``source_factor`` times the largest budget, same policy) trained,
  pruned to the budget (:func:`compress.prune.prune`, ``max_params``, the same ratio in every layer) and
  fine-tuned;
* ``prune-scratch``: the pruned architecture (its card) trained from random weights (Liu et al.'s Scratch-E).

The epochs rule ("the same total epochs"): with ``E = SweepConfig.epochs``, the final weights of every method
have seen at most ``E`` epochs of training: ``scale`` and ``prune-scratch`` train ``E``; ``prune``'s source
trains ``E // 2`` and the pruned model is fine-tuned ``E - E // 2``. Every run stops early within its maximum
by the sweep's patience rule (converged training), so the epochs a run trains are recorded (``epochs``; for
``prune`` also ``source_epochs``). Liu et al. train the large model for the full schedule and then fine-tune,
and add Scratch-B (the small model trained for the large model's compute); with early stopping a run that
converged before its cap would not use more epochs, so Scratch-B is not a separate method here.

All runs go through the sweep's executor (``run(fn, tasks)``: in this process, ``--jobs N`` worker processes,
or Ray) with the sweep's runner (:class:`~compress.study.runner.TaskRunner`), in two waves: the sources
(:class:`~compress.study.pruning_tasks.PruneTask`, method ``source``, the seeds of a family trained together), then
every (family, budget, method) with its seeds. The driver prunes; workers only train. Kill-safe and resumable
like the sweep: a run counts once its record is written (:class:`~compress.study.records.RecordBook`).

Folder (beside the sweep's)::

    pruning/settings.json      the SweepConfig and the comparison's settings; a rerun with others is refused
    pruning/runs/ID/           each run folder (ID: family-source-sSEED, family-budget-method-sSEED)
    pruning/records/ID.json    one finished run's record (the source of truth)
    pruning/failed/ID.json     a run that raised; a rerun tries it again
    pruning.json               {"format", "config", "settings", "methods", "records", "sources", "skipped",
                               "failed"}: the scale records copied from results.json next to the pruning ones
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from compress import _io
from compress.study.config import SweepConfig
from compress.study.data_cache import sweep_data
from compress.study.pruning_tasks import PruneTask, prune_run_id, prune_tasks, source_tasks
from compress.study.records import RecordBook
from compress.study.runner import TaskRunner
from compress.study.sweep import run_sweep
from compress.study.tasks import longest_first
from compress.track import RunTracking

__all__ = ["PRUNE_METHODS", "PRUNING_FORMAT", "run_pruning_study", "load_pruning"]

PRUNE_METHODS = ("scale", "prune", "prune-scratch")
PRUNING_FORMAT = "compress.prune-study/2"

Say = Callable[[str], None]


def _check(config: SweepConfig, methods, source_factor: float) -> tuple[str, ...]:
    methods = tuple(methods)
    bad = [m for m in methods if m not in PRUNE_METHODS]
    if bad or not methods:
        raise ValueError(f"sweep: methods must be among {', '.join(PRUNE_METHODS)}, got {', '.join(methods) or 'none'}")
    if "prune" in methods and config.epochs < 2:
        raise ValueError("sweep: --methods prune needs --epochs >= 2 (half to train the larger model, half to "
                         "fine-tune the pruned one)")
    if isinstance(source_factor, bool) or not isinstance(source_factor, (int, float)) or not source_factor > 1:
        raise ValueError(f"sweep: source_factor must be a number > 1, got {source_factor!r}")
    if config.policies[0] == "compound_res":
        raise ValueError("sweep: --methods prune compares at one resolution; put a policy that keeps it "
                         "(width, compound, min_channels) first in --policies")
    return methods


def run_pruning_study(config: SweepConfig, out: str | os.PathLike, *, methods=PRUNE_METHODS,
                      source_factor: float = 4.0, importance: str = "l1", executor: Any = None,
                      overwrite: bool = False, progress: Say | None = print, loggers: Any = None,
                      log_dir: str | os.PathLike = ".") -> dict:
    """Run (or resume) the sweep in ``out`` and the pruning comparison beside it; returns ``pruning.json``'s dict.

    ``methods``: any of :data:`PRUNE_METHODS` (``scale`` is the sweep itself and always runs). ``source_factor``:
    the larger model's parameters as a multiple of the largest budget. ``importance``: how it is pruned
    (``compress.prune``'s importances). ``executor``: as :func:`~compress.study.sweep.run_sweep`'s; the sweep and
    both waves of the comparison go through it. ``loggers``, ``log_dir``: as ``run_sweep``'s; the comparison's runs
    are tracked runs ``SWEEP/pruning/RUN_ID``. Raises ValueError for unknown methods, fewer than 2 epochs with
    ``prune``, a ``compound_res`` first policy, or a folder holding a comparison with other settings.
    """
    from compress.study.executors import SequentialExecutor
    from compress.study.lock import folder_lock

    methods = _check(config, methods, source_factor)
    executor = executor or SequentialExecutor()
    results = run_sweep(config, out, executor=executor, overwrite=overwrite, progress=progress, loggers=loggers,
                        log_dir=log_dir)
    settings = {"source_factor": source_factor, "importance": importance}
    track = RunTracking.of(loggers, log_dir, f"{Path(out).resolve().name}/pruning")
    with folder_lock(out):      # one writer at a time, as the sweep itself
        return _compare(config, settings, Path(out), results, methods, executor, overwrite, progress or _quiet,
                        track)


def _start(root: Path, config: SweepConfig, settings: dict, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, discard) a comparison in ``root`` with another config or settings."""
    path = root / "settings.json"
    want = {"config": config.to_dict(), "settings": settings}
    if path.exists() and json.loads(path.read_text()) != want:
        if not overwrite:
            raise ValueError(f"{root.parent}: its pruning comparison has other settings; use another --out, or "
                             "pass --overwrite to start it over")
        shutil.rmtree(root)
        (root.parent / "pruning.json").unlink(missing_ok=True)
    if not path.exists():
        _io.write_json(path, want)


def _compare(config: SweepConfig, settings: dict, out: Path, results: dict, methods: tuple[str, ...], executor,
             overwrite: bool, say: Say, track: RunTracking | None = None) -> dict:
    """The comparison beside the finished sweep: the sources still to train, then the pruned runs."""
    root = out / "pruning"
    _start(root, config, settings, overwrite)
    bundle, options = sweep_data(config)       # the images the sweep's runs trained on
    book = RecordBook.resume(root)
    runner = TaskRunner(bundle, track=track)
    missing = _missing(config, methods, book)
    needs = sorted({(f, s) for f, _, _, s in missing if prune_run_id(f, None, "source", s) not in book.finished})
    _run(executor, runner, source_tasks(config, settings, bundle, options, root, needs), book, say)
    tasks = prune_tasks(config, settings, options, root, missing, book.finished, book.skipped, say)
    _run(executor, runner, tasks, book, say)
    return _write(out, config, settings, methods, results, book)


def _missing(config: SweepConfig, methods: tuple[str, ...], book: RecordBook) -> list[tuple]:
    """(family, budget, method, seed) of every pruned run with no record yet."""
    todo = tuple(m for m in methods if m != "scale")
    wanted = {(f, b, m, s) for f in config.families for b in config.budgets for m in todo for s in range(config.seeds)}
    return sorted(k for k in wanted if prune_run_id(*k) not in book.finished)


def _run(executor, runner: TaskRunner, tasks: list[PruneTask], book: RecordBook, say: Say) -> None:
    """Run ``tasks`` through ``executor`` (longest first), writing each record as its task finishes; a pruned
    run's record gets its source's size and epochs."""
    for records in executor.run(runner, longest_first(tasks)):
        for r in records:
            if "error" not in r and r["method"] != "source":
                src = book.finished[prune_run_id(r["family"], None, "source", r["seed"])]
                r = {**r, "source_param_count": src["param_count"], "source_epochs": src["epochs"]}
            book.add(r)
            say(_line(r))


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['run_id']}: FAILED: {r['error']}"
    acc = r["test_acc"] if r["test_acc"] is not None else r["val_acc"]
    return (f"{r['run_id']}: {r['param_count']:,} params, acc {acc:.3f}, {r['epochs']} epochs, "
            f"{r['train_seconds']:.1f} s")


def _write(out: Path, config: SweepConfig, settings: dict, methods: tuple[str, ...], results: dict,
           book: RecordBook) -> dict:
    """``pruning.json``: the sweep's scale records (its first policy, variant ``full``) beside the pruned ones."""
    policy = config.policies[0]
    scale = [{**{k: r.get(k) for k in ("run_id", "family", "budget", "seed", "param_count", "macs", "val_acc",
                                       "test_acc", "best_epoch", "epochs", "converged", "train_seconds",
                                       "run_dir")}, "method": "scale", "max_epochs": config.epochs}
             for r in results["records"] if r.get("policy", "width") == policy and r["variant"] == "full"]
    pruned = [r for r in book.finished.values() if r["method"] != "source"]
    order = lambda r: (r["family"], r["budget"], PRUNE_METHODS.index(r["method"]), r["seed"])  # noqa: E731
    doc = {"format": PRUNING_FORMAT, "config": config.to_dict(), "settings": settings, "methods": list(methods),
           "records": sorted((r for r in scale + pruned if r["method"] in methods), key=order),
           "sources": sorted((r for r in book.finished.values() if r["method"] == "source"),
                             key=lambda r: (r["family"], r["seed"])),
           "skipped": book.skipped, "failed": sorted(book.failed.values(), key=lambda r: r["run_id"])}
    _io.write_json(out / "pruning.json", doc)
    return doc


def load_pruning(sweep_dir: str | os.PathLike) -> dict | None:
    """``pruning.json`` of a sweep folder, or None when the sweep ran without ``--methods``."""
    path = Path(sweep_dir) / "pruning.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("format") != PRUNING_FORMAT:
        raise ValueError(f"{path}: format {doc.get('format')!r}, expected {PRUNING_FORMAT!r}; rerun the sweep "
                         "command to rewrite it")
    return doc


def _quiet(line: str) -> None:
    pass
