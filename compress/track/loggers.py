"""The three loggers: :class:`CsvLogger` (no dependency), :class:`TensorBoardLogger` (``torch.utils.tensorboard``)
and :class:`MLflowLogger` (MLflow's local file store). TensorBoard and MLflow are imported when such a logger is
made, never when compress is imported; a missing one is :class:`MissingExtra` naming the extra to install."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from compress import _io
from compress.track.base import flatten

__all__ = ["CsvLogger", "TensorBoardLogger", "MLflowLogger", "MissingExtra"]

PARAM_CHARS = 500   # MLflow's smallest limit on a parameter's value (2.x allows 6000; older stores 500)


class MissingExtra(ValueError):
    """A logger's package is not installed: the message names it and the extra that installs it."""


def _missing(logger: str, package: str) -> MissingExtra:
    return MissingExtra(f"the {logger} logger needs the {package!r} package, which is not installed: "
                        f"pip install \"compress[track]\"")


def _writable(folder: Path, what: str) -> Path:
    """``folder`` exists as a folder or can be made, in a writable place (ValueError naming ``what`` otherwise)."""
    return _io.check_output_folder(folder, overwrite=None, what=what)


def _params_text(params: Mapping[str, Any]) -> str:
    return "\n".join(f"| {k} | {v} |" for k, v in flatten(params).items())


class CsvLogger:
    """``FOLDER/metrics.csv``: a ``step`` column and one per metric (in the order first logged), one row per
    epoch and a last row whose step is ``final`` holding the final metrics. Rewritten whole (atomically) after
    every epoch once ``folder`` exists, and at ``finish`` (creating it): a run folder, which appears only when
    the run is written, gets it then. Artifacts are left where they are (they are files already)."""

    name = "csv"

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"csv logger: {str(self.folder)!r} is a file; give a folder")
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = ["step"]

    @property
    def path(self) -> Path:
        return self.folder / "metrics.csv"

    def start(self, run_name: str, params: Mapping[str, Any]) -> None:
        self.rows, self.columns = [], ["step"]

    def _add(self, step: Any, metrics: Mapping[str, float]) -> None:
        self.columns += [k for k in metrics if k not in self.columns]
        self.rows.append({"step": step, **metrics})

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._add(step, metrics)
        if self.folder.is_dir():
            _io.write_csv(self.path, self.rows, self.columns)

    def log_artifact(self, path: str | os.PathLike) -> None:
        pass

    def finish(self, final_metrics: Mapping[str, float]) -> None:
        self._add("final", final_metrics)
        self.folder.mkdir(parents=True, exist_ok=True)
        _io.write_csv(self.path, self.rows, self.columns)


class TensorBoardLogger:
    """Event files in ``FOLDER/RUN_NAME`` through ``torch.utils.tensorboard.SummaryWriter``: every metric as a
    scalar per step, the parameters as a text table and as hyperparameters (the HPARAMS tab, with the final
    metrics as ``final/NAME`` scalars), PNG figures as images (``figures/NAME``), other artifacts' paths as text.
    ``tensorboard --logdir FOLDER`` shows them beside other runs."""

    name = "tensorboard"

    def __init__(self, folder: str | os.PathLike = "runs") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self._writer_class = SummaryWriter
        self.folder = _writable(Path(folder), "tensorboard folder")
        self.writer: Any = None
        self.params: dict[str, Any] = {}
        self.last_step = 0

    def start(self, run_name: str, params: Mapping[str, Any]) -> None:
        self.log_dir = self.folder / run_name
        self.writer = self._writer_class(log_dir=str(self.log_dir))
        self.params = flatten(params)
        self.writer.add_text("params", "| parameter | value |\n|---|---|\n" + _params_text(params), 0)
        self.writer.flush()

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.last_step = max(self.last_step, step)
        self.writer.flush()

    def log_artifact(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.suffix.lower() == ".png":
            import numpy as np
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(f"figures/{path.stem}", pixels, self.last_step, dataformats="HWC")
        else:
            self.writer.add_text("artifacts", str(path.resolve()), self.last_step)
        self.writer.flush()

    def finish(self, final_metrics: Mapping[str, float]) -> None:
        from torch.utils.tensorboard.summary import hparams

        final = {f"final/{k}": v for k, v in final_metrics.items()}
        for key, value in final.items():
            self.writer.add_scalar(key, value, self.last_step)
        values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in self.params.items()}
        for summary in hparams(values, final):
            self.writer.file_writer.add_summary(summary)
        self.writer.close()


class MLflowLogger:
    """One MLflow run per compress run in experiment ``experiment`` of the local file store ``FOLDER``
    (``mlflow ui --backend-store-uri FOLDER``), or of ``tracking_uri`` when given (a database or a server): the
    parameters flattened (``train.lr``, values cut to 500 characters), every metric per step, the final metrics
    as ``final/NAME``, figures and files as artifacts. MLflow 3 keeps its file store in maintenance mode and
    asks for ``MLFLOW_ALLOW_FILE_STORE=true``: set here (unless set otherwise) when the store is a folder."""

    name = "mlflow"

    def __init__(self, folder: str | os.PathLike = "mlruns", *, experiment: str = "compress",
                 tracking_uri: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow", "mlflow") from None
        self._client_class = MlflowClient
        if tracking_uri is None:
            self.folder = _writable(Path(folder), "mlflow folder")
            tracking_uri = self.folder.resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.run_id: str | None = None
        self.last_step = 0

    def _experiment_id(self, client) -> str:
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(self.experiment)
        except Exception:   # another process made it first (a search's workers start together)
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def start(self, run_name: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client = self._client_class(tracking_uri=self.tracking_uri)
        run = self.client.create_run(self._experiment_id(self.client), run_name=run_name)
        self.run_id = run.info.run_id
        items = [Param(k, str(v)[:PARAM_CHARS]) for k, v in flatten(params).items()]
        for i in range(0, len(items), 100):   # MLflow takes at most 100 parameters per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def _run_id(self) -> str:
        assert self.run_id is not None, "MLflowLogger: start() first"   # the Tracker starts every logger
        return self.run_id

    def _log(self, step: int, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self._run_id(), metrics=items[i:i + 1000])

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._log(step, metrics)
        self.last_step = max(self.last_step, step)

    def log_artifact(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self._run_id(), str(path), path.name)
        else:
            self.client.log_artifact(self._run_id(), str(path))

    def finish(self, final_metrics: Mapping[str, float]) -> None:
        self._log(self.last_step, {f"final/{k}": v for k, v in final_metrics.items()})
        self.client.set_terminated(self._run_id(), "FINISHED")
