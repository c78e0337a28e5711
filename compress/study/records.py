"""A study folder's records: one file per finished run (``records/ID.json``, the source of truth) or per failed
run (``failed/ID.json``, tried again by the next run), held as a :class:`RecordBook` while a study runs; and the
results files a sweep regenerates from them (``results.json``, ``results.csv``).

Kill-safe: a run counts as finished only once its record is written (atomically, ``compress._io``), and results
files are rewritten atomically from the records."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from compress import _io
from compress.study.config import SweepConfig
from compress.study.results import SWEEP_FORMAT

__all__ = ["RecordBook", "read_records", "clean_partial_runs", "write_results", "CSV_COLUMNS"]

CSV_COLUMNS = ["run_id", "family", "budget", "policy", "variant", "seed", "width_mult", "depth_mult", "input_size",
               "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "val_acc", "test_acc", "best_epoch",
               "epochs", "converged", "train_seconds", "latency_ms", "latency_runtime", "n_val", "n_test"]


def read_records(folder: Path) -> list[dict]:
    """The finished runs' records in ``folder/records``."""
    records = []
    for p in sorted((folder / "records").glob("*.json")):
        try:
            records.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            p.unlink()   # cannot happen with atomic writes, but never let one bad file stop a resume
    return records


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
        """The finished records in ``folder`` (those whose run id is in ``wanted``, when given). Removes what an
        interrupted or failed run left (its run folder, ``failed/``): those runs are tried again."""
        finished = {r["run_id"]: r for r in read_records(folder) if wanted is None or r["run_id"] in wanted}
        clean_partial_runs(folder, set(finished))
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
