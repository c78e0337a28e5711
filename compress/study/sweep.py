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

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from compress import _io
from compress.device import environment
from compress.study.config import SweepConfig
from compress.study.data_cache import load_data, sweep_data
from compress.study.executors import Executor, SequentialExecutor
from compress.study.lock import folder_lock
from compress.study.points import PointTask, point_tasks, run_ids, size_points
from compress.study.records import RecordBook, write_results
from compress.study.results import SWEEP_FORMAT, load_results
from compress.study.runner import TaskRunner
from compress.study.tasks import longest_first

__all__ = ["run_sweep"]

Say = Callable[[str], None]


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, executor: Executor | None = None,
              overwrite: bool = False, progress: Say | None = print) -> dict:
    """Run (or resume) the sweep in folder ``out``; returns the results dict (as in ``results.json``).

    ``executor``: where the points train (default: in this process). ``progress``: gets one line per point
    (None: quiet). Raises ValueError when ``out`` holds a sweep with another config (unless ``overwrite``, which
    starts over) or the data's images are not square, and :class:`~compress.study.lock.FolderLocked` (a
    ValueError) while another live sweep runs in ``out``.
    """
    out = Path(out)
    with folder_lock(out):
        return _run_locked(config, out, executor or SequentialExecutor(), overwrite, progress or _quiet)


def _run_locked(config: SweepConfig, out: Path, executor: Executor, overwrite: bool, say: Say) -> dict:
    _check_config(out, config, overwrite)
    bundle, options = sweep_data(config)
    _start_folder(out, config, bundle)
    sizing = size_points(config, out, bundle)
    book = RecordBook.resume(out, run_ids(config))
    todo, book.skipped, total = point_tasks(config, out, sizing, bundle, options, set(book.finished))
    _announce(book, total, say)
    write_results(book, config)
    _train(config, executor, _runner(config, bundle, todo), longest_first(todo), book, total, say)
    if config.latency:
        _measure_latency(config, book, say)
    return load_results(out)


def _check_config(out: Path, config: SweepConfig, overwrite: bool) -> None:
    """Refuse a folder that holds a sweep with another config; with ``overwrite``, discard that sweep."""
    path = out / "sweep.json"
    if not path.exists():
        return
    old, problem = _stored_config(path)
    new = config.to_dict()
    if old == new:
        return
    if problem and not overwrite:
        raise ValueError(f"{path}: {problem}; pass --overwrite to start this sweep over")
    if not overwrite:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"sweep folder {out} holds a sweep with another config (differs in: {', '.join(diff)}); "
                         "use another --out, or pass --overwrite to discard its results and start over")
    for name in ("records", "failed", "runs", "sizing.json", "results.json", "results.csv", "sweep.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


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


def _start_folder(out: Path, config: SweepConfig, bundle: Any) -> None:
    """Create ``out`` and its ``sweep.json`` (config, environment, data), unless a resumed sweep has them."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "sweep.json").exists():
        return
    data = {"source": bundle.source, "class_names": list(bundle.class_names), "in_chans": bundle.in_chans,
            "input_size": bundle.input_size, "train": len(bundle.train), "val": len(bundle.val),
            "test": len(bundle.test) if bundle.test is not None else 0}
    _io.write_json(out / "sweep.json", {"format": SWEEP_FORMAT, "config": config.to_dict(),
                                        "environment": environment("cpu"), "data": data})


def _announce(book: RecordBook, total: int, say: Say) -> None:
    for s in book.skipped:
        say(f"skip {s['family']} ({s['policy']}) at {s['budget']:,} params: {s['reason']}")
    if book.finished:
        say(f"resuming: {len(book.finished)} of {total} runs already finished")


def _runner(config: SweepConfig, bundle: Any, todo: list[PointTask]) -> TaskRunner:
    """The executor's ``fn``: a runner carrying the sweep's bundle and one per resolution a policy chose."""
    sizes = sorted({t.data_options["input_size"] for t in todo if "input_size" in t.data_options})
    resized = tuple((size, load_data(config.data, {**config.data_options, "input_size": size})) for size in sizes
                    if size != bundle.input_size)
    return TaskRunner(bundle, resized)


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
        r["latency_ms"], r["latency_runtime"] = fastest_latency(run.model, run.card.input_shape, threads=1)
        book.add(r)
    if todo:
        write_results(book, config)
        say(f"measured CPU latency (batch 1, 1 thread, fastest float runtime) of {len(todo)} runs")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _quiet(line: str) -> None:
    pass
