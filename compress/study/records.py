"""A study folder's records: one file per finished run (``records/ID.json``, the source of truth) or per failed
run (``failed/ID.json``, tried again by the next run), held as a :class:`RecordBook` while a study runs; and the
results files a sweep regenerates from them (``results.json``, ``results.csv``).

Kill-safe: a run counts as finished only once its record is written (atomically, ``compress._io``), and results
files are rewritten atomically from the records."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from compress import _io
from compress.study.config import SweepConfig
from compress.study.results import SWEEP_FORMAT

__all__ = ["RecordBook", "read_records", "check_record", "clean_partial_runs", "write_results", "CSV_COLUMNS"]

CSV_COLUMNS = ["run_id", "family", "budget", "policy", "variant", "seed", "width_mult", "depth_mult", "input_size",
               "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "val_acc", "test_acc", "best_epoch",
               "epochs", "converged", "train_seconds", "latency_ms", "latency_runtime", "n_val", "n_test"]


# The fields of a finished run's record (a sweep's, compress.study.points; the pruning study's,
# compress.study.pruning_tasks) and what each may hold; a field a record lacks is not checked.
_COUNTS = ("seed", "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "epochs", "n_val", "n_test")
_OPTIONAL_COUNTS = ("budget", "best_epoch", "input_size", "members")   # or null
_ACCURACIES = ("val_acc", "test_acc")                                  # fractions in [0, 1], or null
_NUMBERS = ("width_mult", "depth_mult", "train_seconds", "max_epochs")  # finite, >= 0
_OPTIONAL_NUMBERS = ("latency_ms",)                                    # or null
_TEXTS = ("family", "policy", "variant", "method")
_OPTIONAL_TEXTS = ("latency_runtime",)                                 # or null
_REQUIRED = ("family", "seed", "val_acc", "test_acc")


def read_records(folder: Path) -> list[dict]:
    """The finished runs' records in ``folder/records``, each checked (:func:`check_record`). Raises ValueError
    naming the file when one holds what a sweep never writes (an accuracy of 5.0, a negative count, a string
    for a number: an edited or foreign file), rather than putting it into the results."""
    records = []
    for p in sorted((folder / "records").glob("*.json")):
        try:
            record = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            p.unlink()   # cannot happen with atomic writes, but never let one bad file stop a resume
            continue
        problem = check_record(record, p.stem)
        if problem:
            raise ValueError(f"{p}: {problem}; compress never writes that (an edited file?): remove it to "
                             "train that run again")
        records.append(record)
    return records


def check_record(record: object, run_id: str | None = None) -> str | None:
    """What is wrong with a finished run's record (None: nothing): a JSON object whose ``run_id`` is ``run_id``
    (the file's name), whose accuracies are in [0, 1] or null, counts non-negative ints, sizes and times finite
    numbers >= 0, labels strings and ``run_dir`` a relative path inside the study folder."""
    if not isinstance(record, dict):
        return f"not a record (a JSON {type(record).__name__}, not an object)"
    rid = record.get("run_id")
    if not isinstance(rid, str) or (run_id is not None and rid != run_id):
        return f"run_id {_short(rid)} is not the file's name {run_id!r}" if run_id else f"run_id {_short(rid)}"
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        return f"no {', '.join(missing)}"
    rules = ([(k, False, _is_count, "an integer >= 0") for k in _COUNTS]
             + [(k, True, _is_count, "an integer >= 0") for k in _OPTIONAL_COUNTS]
             + [(k, True, _is_accuracy, "an accuracy in [0, 1]") for k in _ACCURACIES]
             + [(k, False, _is_amount, "a finite number >= 0") for k in _NUMBERS]
             + [(k, True, _is_amount, "a finite number >= 0") for k in _OPTIONAL_NUMBERS]
             + [(k, False, _is_text, "a string") for k in _TEXTS]
             + [(k, True, _is_text, "a string") for k in _OPTIONAL_TEXTS]
             + [("converged", True, lambda v: isinstance(v, bool), "true or false")])
    for key, nullable, ok, what in rules:
        if key not in record or (nullable and record[key] is None):
            continue
        if not ok(record[key]):
            return f"{key} {_short(record[key])} is not {what}{' or null' if nullable else ''}"
    run_dir = record.get("run_dir")
    if "run_dir" in record and (not isinstance(run_dir, str) or not run_dir or Path(run_dir).is_absolute()
                                or ".." in Path(run_dir).parts):
        return f"run_dir {_short(run_dir)} is not a folder inside the study folder"
    return None


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_accuracy(value: object) -> bool:
    return _number(value) and 0 <= value <= 1


def _is_amount(value: object) -> bool:
    return _number(value) and value >= 0


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def clean_partial_runs(folder: Path, finished: set[str]) -> None:
    """Remove the run folders in ``folder/runs`` (and fit's hidden staging folders) of runs with no record in
    ``finished``: they are redone."""
    runs = folder / "runs"
    if not runs.is_dir():
        return
    for p in runs.iterdir():
        if p.name.startswith(".") or p.name not in finished:   # ".ID.partial-PID": fit's staging folder
            shutil.rmtree(p, ignore_errors=True)


@dataclass
class RecordBook:
    """The records of one study folder as its runs finish: ``finished`` and ``failed`` by run id, and the points
    skipped (no model fits their budget)."""

    folder: Path
    finished: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    @classmethod
    def resume(cls, folder: Path, wanted: set[str] | None = None) -> "RecordBook":
        """The finished records in ``folder`` (those whose run id is in ``wanted``, when given; the others stay
        on disk). Removes what an interrupted or failed run left (its run folder, ``failed/``): those runs are
        tried again."""
        records = read_records(folder)
        finished = {r["run_id"]: r for r in records if wanted is None or r["run_id"] in wanted}
        # runs with a record stay, wanted or not: a sweep that drops a budget and adds it back keeps its runs
        clean_partial_runs(folder, {r["run_id"] for r in records})
        shutil.rmtree(folder / "failed", ignore_errors=True)
        return cls(folder, finished)

    def add(self, record: dict) -> None:
        """Write ``record`` (atomically): to ``failed/ID.json`` when it is a failed record (an ``"error"`` key),
        else to ``records/ID.json``, replacing an earlier one of the same run."""
        key = record["run_id"]
        if "error" in record:
            _io.write_json(self.folder / "failed" / f"{key}.json", record)
            self.failed[key] = record
        else:
            _io.write_json(self.folder / "records" / f"{key}.json", record)
            self.finished[key] = record


def write_results(book: RecordBook, config: SweepConfig) -> None:
    """``results.json`` (``{"format", "config", "records", "skipped", "failed"}``) and ``results.csv`` (the records
    as a table, :data:`CSV_COLUMNS`) of a sweep, regenerated from ``book``."""
    order = lambda r: (r["family"], r["budget"], r.get("policy", "width"), r["variant"], r["seed"])  # noqa: E731
    records = sorted(book.finished.values(), key=order)
    _io.write_json(book.folder / "results.json", {"format": SWEEP_FORMAT, "config": config.to_dict(),
                                                  "records": records, "skipped": book.skipped,
                                                  "failed": sorted(book.failed.values(), key=order)})
    _io.write_csv(book.folder / "results.csv", records, CSV_COLUMNS)
