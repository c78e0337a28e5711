"""Parameter-vs-accuracy sweeps: :func:`run_sweep` sizes each family to each parameter budget along each scaling
policy, trains all seeds of a point together (:func:`compress.train.fit_many`) and records them.

A sweep folder::

    sweep.json        the SweepConfig and the environment; a rerun with another config is refused
    sweep.lock        while a sweep runs: its PID and host (compress.study.lock); a second sweep here is refused
    sizing.json       family x policy x budget -> the sized model and its figures (compress.study.points)
    records/ID.json   one finished run's record (one seed of one point), written atomically: the source of truth
    failed/ID.json    a run that raised: what it was and the error; a rerun tries it again
    runs/ID/          the run folder (compress.train) of each run
    results.json      {"format", "config", "records", "skipped", "failed"} regenerated from records/ after every run
    results.csv       the records as a table
    metrics.csv       with loggers=[..."csv"]: the sweep's own tracked run (each run's is in its run folder)

Kill-safe and resumable: a run counts as finished only once its record is written (atomically), and results
files are rewritten atomically from the records, so killing the sweep at any moment loses at most the runs in
flight; rerunning the same command skips finished runs and redoes interrupted ones.

The rooms it uses: :mod:`~compress.study.config` (``SweepConfig``), :mod:`~compress.study.points` (the points,
their sizing and the :class:`~compress.study.points.PointTask` s still to train), :mod:`~compress.study.runner`
(:class:`~compress.study.runner.TaskRunner`, the executor's ``fn``), :mod:`~compress.study.data_cache` and
:mod:`~compress.study.records`. Points go through an executor (:mod:`compress.study.executors`): in this process, a
local process pool, or a Ray cluster (:mod:`compress.study.ray_executor`); anything with the same
``run(fn, tasks)`` method (yielding results as they finish) can take them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from compress import _io
from compress.device import environment
from compress.provenance import provenance
from compress.study.config import GROWABLE, SweepConfig, data_settings
from compress.study.data_cache import load_data, sweep_data
from compress.study.executors import Executor, SequentialExecutor
from compress.study.lock import folder_lock
from compress.study.points import PointTask, point_tasks, run_ids, size_points, widening_tasks
from compress.study.records import RecordBook, write_results
from compress.study.results import SWEEP_FORMAT, half_width, load_results, summarize
from compress.study.runner import TaskRunner
from compress.study.tasks import longest_first
from compress.track import RunTracking

__all__ = ["run_sweep"]

Say = Callable[[str], None]


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, executor: Executor | None = None,
              overwrite: bool = False, progress: Say | None = print, loggers: str | Sequence[str] | None = None,
              log_dir: str | os.PathLike = ".") -> dict:
    """Run (or resume) the sweep in folder ``out``; returns the results dict (as in ``results.json``).

    ``executor``: where the points train (default: in this process). ``progress``: gets one line per point
    (None: quiet). ``loggers``: tracking names (``"tensorboard,mlflow,csv"``, :func:`compress.track.make_loggers`
    with ``log_dir``): every run is a tracked run ``SWEEP/RUN_ID`` (its point and settings, its epochs, final
    metrics and run folder; csv in the run folder), made where it trains, and the sweep one of its own ``SWEEP``
    (the config; at the end each point's mean accuracies and seed counts, ``results.json`` and ``results.csv``;
    csv in ``out``). A missing package or a log folder that cannot be written is refused before any work.
    Raises ValueError when ``out`` holds a sweep with another config (unless ``overwrite``, which starts over) or
    the data's images are not square, and :class:`~compress.study.lock.FolderLocked` (a ValueError) while another
    live sweep runs in ``out``.
    """
    from compress.track import Tracker, check_names, make_loggers

    out = Path(out)
    names = check_names(loggers)
    tracker = Tracker(make_loggers(names, out, log_dir=log_dir)) if names else None   # before any work
    track = RunTracking.of(names, log_dir, out.resolve().name)
    with folder_lock(out):
        if tracker is not None:
            tracker.start(out.resolve().name, {"sweep": config.to_dict()})
        results = _run_locked(config, out, executor or SequentialExecutor(), overwrite, progress or _quiet, track)
        if tracker is not None:
            _track_sweep(tracker, out, results)
        return results


def _track_sweep(tracker: Any, out: Path, results: dict) -> None:
    """The end of the sweep's own tracked run: per point (``FAMILY-BUDGET-POLICY-VARIANT/...``) the mean validation
    and test accuracy and the seed count, the runs finished and failed, and the results files."""
    final: dict[str, Any] = {"runs": len(results["records"]), "failed": len(results.get("failed", []))}
    for row in summarize(results):
        point = PointTask.make_id(row["family"], row["budget"], row["policy"], row["variant"])
        final[f"{point}/seeds"] = row["n"]
        for key in ("val_acc", "test_acc"):
            if isinstance(row.get(key), dict):
                final[f"{point}/{key}"] = row[key]["mean"]
    for name in ("results.json", "results.csv"):
        if (out / name).exists():
            tracker.log_artifact(out / name)
    tracker.finish(final)


def _run_locked(config: SweepConfig, out: Path, executor: Executor, overwrite: bool, say: Say,
                track: RunTracking | None = None) -> dict:
    config, grown = _check_config(out, config, overwrite)
    native, bundle, options = _sweep_data(config)
    say(data_settings(config.to_dict(), native_size=native.input_size, input_size=bundle.input_size,
                      flip_invariant=bundle.flip_invariant))
    _start_folder(out, config, native, bundle, grown)
    sizing = size_points(config, out, bundle)
    book = RecordBook.resume(out, run_ids(config))
    todo, book.skipped, total = point_tasks(config, out, sizing, bundle, options, set(book.finished))
    _announce(book, total, grown, say)
    write_results(book, config)
    _train(config, executor, _runner(config, bundle, todo, track), longest_first(todo), book, total, say)
    if config.target_halfwidth is not None:
        _widen(config, out, executor, sizing, bundle, options, book, say, track)
    if config.latency:
        _measure_latency(config, book, say)
    return load_results(out)


def _sweep_data(config: SweepConfig) -> tuple[Any, Any, dict]:
    """The data as stored, the bundle every run trains on and its load options (:func:`sweep_data`)."""
    bundle, options = sweep_data(config)
    return load_data(config.data, config.data_options), bundle, options


def _widen(config: SweepConfig, out: Path, executor: Executor, sizing: dict, bundle: Any, options: dict,
           book: RecordBook, say: Say, track: RunTracking | None = None) -> None:
    """Intervals to a target: rounds of more seeds (each point's new seeds stacked as one task) for the points
    whose interval is wider than ``config.target_halfwidth`` points, until every point meets it or has
    ``config.seed_cap`` seeds (``points.widening_tasks``)."""
    wanted = run_ids(config)
    for round_ in itertools.count(1):
        finished = [r for k, r in book.finished.items() if k in wanted]
        rows = summarize({"records": finished})
        todo, capped = widening_tasks(config, out, sizing, bundle, options, rows, set(book.failed))
        if not todo:
            if capped:
                say(f"interval target +-{config.target_halfwidth:g} points not reached with {config.seed_cap} "
                    f"seeds: " + ", ".join(_point_label(r) for r in capped))
            return
        added = sum(len(t.seeds) for t in todo)
        say(f"round {round_} of the interval target +-{config.target_halfwidth:g} points: {added} more seeds for "
            + ", ".join(f"{t.task_id} ({min(t.seeds)}..{max(t.seeds)})" for t in todo))
        total = len(book.finished) + added
        _train(config, executor, _runner(config, bundle, todo, track), longest_first(todo), book, total, say)


def _point_label(row: dict) -> str:
    width = half_width(row)
    return (f"{PointTask.make_id(row['family'], row['budget'], row['policy'], row['variant'])} "
            f"(+-{100 * (width or 0.0):.1f} with {row['n']} seeds)")   # a point wider than the target has one


def _check_config(out: Path, config: SweepConfig, overwrite: bool) -> tuple[SweepConfig, list[str]]:
    """Refuse a folder that holds a sweep with another training or data setting, or with points or seeds the new
    config drops; with ``overwrite``, discard that sweep. A config that only adds (``config.GROWABLE``: families,
    budgets, policies, seeds, ablations, the interval target, latency) grows the sweep: returns the config to run
    (an ablation point that the new config would move, left to default, stays where it is) and the fields that
    changed (none: a new folder or the same config)."""
    path = out / "sweep.json"
    if not path.exists():
        return config, []
    old, problem = _stored_config(path)
    if old == config.to_dict():
        return config, []
    if problem and not overwrite:
        raise ValueError(f"{path}: {problem}; pass --overwrite to start this sweep over")
    if not overwrite:
        config = _keep_ablation_point(old, config)
        new = config.to_dict()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        fixed = [k for k in diff if k not in GROWABLE] + _dropped(old, new, config)
        if not fixed:
            return config, diff
        raise ValueError(f"sweep folder {out} holds a sweep with another config (differs in: {', '.join(fixed)}); "
                         "use another --out, or pass --overwrite to discard its results and start over (a sweep "
                         "may grow: more families, budgets, policies, seeds or ablations keep its finished runs)")
    for name in ("records", "failed", "runs", "sizing.json", "results.json", "results.csv", "sweep.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return config, []


def _ablation_point(d: dict) -> tuple:
    return (d.get("ablate_family"), d.get("ablate_budget") or max(d.get("budgets") or [0]),
            d.get("ablate_policy") or (d.get("policies") or ["width"])[0])


def _keep_ablation_point(old: dict, config: SweepConfig) -> SweepConfig:
    """``config`` with its ablation budget and policy pinned to the old sweep's when they are left to default and
    a new budget or policy would move them (the finished ablation runs stay the sweep's)."""
    if not old.get("ablate") or not config.ablate:
        return config
    family, budget, policy = _ablation_point(old)
    keep = {}
    if config.ablate_budget is None and budget != max(config.budgets) and budget in config.budgets:
        keep["ablate_budget"] = budget
    if config.ablate_policy is None and policy != config.policies[0] and policy in config.policies:
        keep["ablate_policy"] = policy
    return dataclasses.replace(config, **keep) if keep else config


def _dropped(old: dict, new: dict, config: SweepConfig) -> list[str]:
    """The growable fields whose change would drop finished points or seeds (a sweep folder only grows)."""
    dropped = [k for k in ("families", "budgets", "policies", "ablate")
               if not set(old.get(k) or ()) <= set(new.get(k) or ())]
    if new["seeds"] < old.get("seeds", 0):
        dropped.append("seeds")
    old_cap = old.get("seeds", 0) if old.get("target_halfwidth") is None else \
        (old.get("max_seeds") or 4 * old.get("seeds", 0))
    if config.seed_cap < old_cap:
        dropped.append("target_halfwidth/max_seeds (fewer seeds allowed)")
    if old.get("ablate") and _ablation_point(old) != _ablation_point(new):
        dropped.append("ablate_family/ablate_budget/ablate_policy")
    before, after = old.get("model_args") or {}, new.get("model_args") or {}
    if not isinstance(before, dict) or any(f in after and after[f] != args for f, args in before.items()):
        dropped.append("model_args")
    return dropped


def _stored_config(path: Path) -> tuple[dict, str | None]:
    """The config a folder's ``sweep.json`` holds, and what is wrong with the file (None: nothing)."""
    try:
        stored = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, f"unreadable ({str(exc)[:200]})"
    if not isinstance(stored, dict):
        return {}, f"not a sweep's settings file (a JSON {type(stored).__name__}, not an object)"
    config = stored.get("config", {})
    if not isinstance(config, dict):
        return {}, f"'config' is a JSON {type(config).__name__}, not an object: not a sweep's settings file"
    return config, None


def _start_folder(out: Path, config: SweepConfig, native: Any, bundle: Any, grown: list[str]) -> None:
    """Create ``out`` and its ``sweep.json`` (config, environment, data), unless a resumed sweep has them; a grown
    sweep's ``sweep.json`` takes the new config (and notes what grew)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "sweep.json"
    if path.exists():
        if grown:
            stored = json.loads(path.read_text())
            history = stored.get("grown", []) + [{"changed": grown, "from": stored.get("config")}]
            _io.write_json(path, {**stored, "config": config.to_dict(), "grown": history})
        return
    data = {"source": bundle.source, "class_names": list(bundle.class_names), "in_chans": bundle.in_chans,
            "input_size": bundle.input_size, "native_size": native.input_size,
            "flip_invariant": bool(bundle.flip_invariant), "train": len(bundle.train), "val": len(bundle.val),
            "test": len(bundle.test) if bundle.test is not None else 0}
    _io.write_json(path, {"format": SWEEP_FORMAT, "config": config.to_dict(),
                          "environment": environment("cpu"), "data": data,
                          "provenance": provenance(native.origin or None)})


def _announce(book: RecordBook, total: int, grown: list[str], say: Say) -> None:
    for s in book.skipped:
        say(f"skip {s['family']} ({s['policy']}) at {s['budget']:,} params: {s['reason']}")
    if grown:
        say(f"the sweep grows (changed: {', '.join(grown)}): its finished runs are kept")
    if book.finished:
        say(f"resuming: {len(book.finished)} of {total} runs already finished")


def _runner(config: SweepConfig, bundle: Any, todo: list[PointTask], track: RunTracking | None = None
            ) -> TaskRunner:
    """The executor's ``fn``: a runner carrying the sweep's bundle and one per resolution a policy chose, and
    ``track``, the loggers each run makes (:func:`~compress.study.runner.train_seeds`)."""
    sizes = sorted({t.data_options["input_size"] for t in todo if "input_size" in t.data_options})
    resized = tuple((size, load_data(config.data, {**config.data_options, "input_size": size})) for size in sizes
                    if size != bundle.input_size)
    return TaskRunner(bundle, resized, track)


def _train(config: SweepConfig, executor: Executor, runner: TaskRunner, todo: list[PointTask], book: RecordBook,
           total: int, say: Say) -> None:
    """Train the points through ``executor``; write each run's record, and the results files, as a point ends."""
    done = len(book.finished)
    for point in executor.run(runner, todo):
        done += len(point)
        for record in point:
            book.add(record)
            if "error" in record:
                say(f"[{done}/{total}] {record['run_id']}: FAILED: {record['error']}")
        write_results(book, config)
        _say_point([r for r in point if "error" not in r], done, total, say)


def _say_point(records: list[dict], done: int, total: int, say: Say) -> None:
    if not records:
        return
    accs = ", ".join(_fmt(r["test_acc"] if r["test_acc"] is not None else r["val_acc"]) for r in records)
    first = records[0]
    point_id = PointTask.make_id(first["family"], first["budget"], first["policy"], first["variant"])
    say(f"[{done}/{total}] {point_id}: {first['param_count']:,} params, {len(records)} seeds together: acc {accs}, "
        f"{sum(r['train_seconds'] for r in records):.1f} s")


def _measure_latency(config: SweepConfig, book: RecordBook, say: Say) -> None:
    """The latency column of every run that lacks it: ``compress.bench.fastest_latency``, the median of the
    fastest float runtime that passed its output check (1 thread, batch 1, 5 warm-up and 30 timed calls), and
    that runtime's name (``latency_runtime``). Measured here, one run at a time after all training: timing next
    to a training worker would measure the contention."""
    from compress.bench import fastest_latency
    from compress.train.runs import load_run

    todo = [r for r in book.finished.values() if r.get("latency_ms") is None]
    for r in sorted(todo, key=lambda r: r["run_id"]):
        run = load_run(book.folder / r["run_dir"])
        assert run.card is not None   # a sweep's models are built by create(), which gives them their card
        r["latency_ms"], r["latency_runtime"] = fastest_latency(run.model, run.card.input_shape, threads=1)
        book.add(r)
    if todo:
        write_results(book, config)
        say(f"measured CPU latency (batch 1, 1 thread, fastest float runtime) of {len(todo)} runs")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _quiet(line: str) -> None:
    pass
