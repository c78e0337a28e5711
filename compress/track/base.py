"""The :class:`Logger` protocol and :class:`Tracker`, the loggers of one run with failures isolated."""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

__all__ = ["Logger", "Tracker", "flatten", "numeric"]


@runtime_checkable
class Logger(Protocol):
    """One place a run is recorded. ``name`` says which in messages (``"csv"``, ``"tensorboard"``, ``"mlflow"``).

    Called in order: ``start`` once, ``log_metrics`` per epoch (``step`` counts epochs from 1, on across the
    fine-tuning steps of a pruning run), ``log_artifact`` for figures and files (a path; a folder for all its
    files), ``finish`` once with the final metrics (the best weights' ``val_acc``, ``test_acc``, ...)."""

    name: str

    def start(self, run_name: str, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def log_artifact(self, path: str | os.PathLike) -> None: ...

    def finish(self, final_metrics: Mapping[str, float]) -> None: ...


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}``; lists and tuples kept as values."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``metrics`` as floats (None, strings, NaN and booleans left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
                value = value.item()
            else:
                continue
        value = float(value)
        if math.isfinite(value):
            out[key] = value
    return out


class Tracker:
    """The loggers of one run. A logger that raises is reported once on stderr (``compress: warning: the mlflow
    logger failed (...); it is off for the rest of this run``) and dropped; the run goes on.

    ``keep_open``: ``compress.train.fit`` starts a tracker that is not started yet and finishes it after the run
    folder is written, unless ``keep_open`` (the caller logs more, as ``prune_run`` across its fine-tuning steps
    and ``compress train`` with its figures, then calls ``finish`` itself). ``last_step`` is the last step logged,
    so a second ``fit`` on one tracker continues its steps."""

    def __init__(self, loggers: Iterable[Logger] = (), *, keep_open: bool = False) -> None:
        self.loggers = list(loggers)
        for lg in self.loggers:
            if not isinstance(lg, Logger):
                raise TypeError(f"loggers: {type(lg).__name__} is no compress.track.Logger (start, log_metrics, "
                                "log_artifact, finish)")
        self.keep_open = keep_open
        self.started = self.finished = False
        self.last_step = 0

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def _each(self, method: str, *args: Any) -> None:
        for lg in list(self.loggers):
            try:
                getattr(lg, method)(*args)
            except Exception as exc:   # any failure of a third-party writer: the run matters more than its log
                self.loggers.remove(lg)
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                print(f"compress: warning: the {getattr(lg, 'name', type(lg).__name__)} logger failed ({detail}); "
                      "it is off for the rest of this run", file=sys.stderr, flush=True)

    def start(self, run_name: str, params: Mapping[str, Any]) -> None:
        if not self.started:
            self.started = True
            self._each("start", run_name, params)

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.last_step = max(self.last_step, int(step))
        values = numeric(metrics)
        if values:
            self._each("log_metrics", int(step), values)

    def log_artifact(self, path: str | os.PathLike) -> None:
        self._each("log_artifact", path)

    def finish(self, final_metrics: Mapping[str, Any]) -> None:
        if self.started and not self.finished:
            self.finished = True
            self._each("finish", numeric(final_metrics))
