"""``make_loggers("tensorboard,csv", folder)``: the CLI's ``--log`` names made into loggers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from compress.track.base import Logger, Tracker
from compress.track.loggers import CsvLogger, MLflowLogger, TensorBoardLogger

__all__ = ["LOGGERS", "check_names", "make_loggers", "RunTracking"]

LOGGERS = ("csv", "tensorboard", "mlflow")


def check_names(names: str | Sequence[str] | None) -> list[str]:
    """``"tensorboard, csv"`` -> ``["tensorboard", "csv"]``; an unknown name is a ValueError listing the known
    ones; repeats are dropped."""
    if names is None:
        return []
    items = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names)]
    out: list[str] = []
    for name in items:
        if not name:
            continue
        if name not in LOGGERS:
            raise ValueError(f"--log: unknown logger {name!r}; known: {', '.join(LOGGERS)}")
        if name not in out:
            out.append(name)
    return out


def make_loggers(names: str | Sequence[str] | None, folder: str | os.PathLike | None, *,
                 log_dir: str | os.PathLike = ".", experiment: str = "compress") -> list[Logger]:
    """Loggers for ``names`` (``csv``, ``tensorboard``, ``mlflow``; a comma-separated string or a list).

    ``folder``: where ``csv`` writes ``metrics.csv`` (the run folder). ``log_dir``: TensorBoard writes
    ``LOG_DIR/runs/RUN_NAME`` (``tensorboard --logdir LOG_DIR/runs``), MLflow's file store is ``LOG_DIR/mlruns``
    (``experiment``). Raises ValueError for an unknown name, a folder that cannot be written, ``csv`` without a
    folder, and :class:`~compress.track.MissingExtra` (a ValueError) naming ``pip install "compress[track]"`` for a
    package that is not installed; all before any logger writes anything."""
    wanted = check_names(names)
    if "csv" in wanted and folder is None:
        raise ValueError("the csv logger needs a folder for metrics.csv")
    log_dir = Path(log_dir)
    made: list[Logger] = []
    for name in wanted:
        if name == "csv":
            assert folder is not None   # refused above
            made.append(CsvLogger(folder))
        elif name == "tensorboard":
            made.append(TensorBoardLogger(log_dir / "runs"))
        else:
            made.append(MLflowLogger(log_dir / "mlruns", experiment=experiment))
    return made


@dataclass(frozen=True)
class RunTracking:
    """What a worker needs to track the runs it trains (a sweep's, a search's): the logger names (checked by the
    driver before any work), the log folder and the prefix of the run names (``SWEEP``, ``SEARCH``). Picklable, so
    it travels with the work to process pools and Ray."""

    names: tuple[str, ...]
    log_dir: str
    prefix: str

    @classmethod
    def of(cls, names: str | Sequence[str] | None, log_dir: str | os.PathLike, prefix: str) -> "RunTracking | None":
        """The tracking for ``names`` (``"mlflow,csv"``), or None when there are none."""
        checked = check_names(names)
        return cls(tuple(checked), str(Path(log_dir).resolve()), prefix) if checked else None

    def start(self, folder: str | os.PathLike | None, run_id: str, params: Mapping[str, Any], *,
              keep_open: bool = False) -> Tracker:
        """A started :class:`Tracker` for run ``PREFIX/RUN_ID``, ``csv`` in ``folder``. A logger that cannot be made
        in this worker's environment (its package missing there, its folder not writable) is reported on stderr and
        left out: the model matters more than its log."""
        import sys

        name = f"{self.prefix}/{run_id}"
        made: list[Logger] = []
        for logger in self.names:
            try:
                made += make_loggers([logger], folder, log_dir=self.log_dir)
            except ValueError as exc:
                print(f"compress: warning: {name}: no {logger} log ({exc})", file=sys.stderr, flush=True)
        tracker = Tracker(made, keep_open=keep_open)
        tracker.start(name, params)
        return tracker
