"""Experiment tracking: a run's settings, per-epoch metrics, final metrics, figures and artifact, written where a
lab's other runs are (TensorBoard, MLflow's local file store) or to a plain ``metrics.csv``.

A :class:`Logger` has four methods, called in this order: ``start(run_name, params)``, ``log_metrics(step,
metrics)`` once per epoch, ``log_artifact(path)`` for each figure or file, ``finish(final_metrics)``.
:class:`CsvLogger` needs nothing; :class:`TensorBoardLogger` (``torch.utils.tensorboard``) and
:class:`MLflowLogger` (MLflow's file store) need the ``track`` extra (``pip install "compress[track]"``) and import
their package only when made. :func:`make_loggers` reads the CLI's names (``"tensorboard,mlflow,csv"``).
:class:`Tracker` is what training holds: the loggers of one run, each disabled (reported once on stderr) when it
fails, so a full disk under ``mlruns/`` never stops the training.

``compress.train.fit(..., loggers=[...])`` and ``compress train/prune/search/sweep/study --log NAMES`` use it
(:class:`RunTracking`: the runs a worker trains); this package
imports nothing from the rest of compress but ``compress._io``.
"""

from compress.track.base import Logger, Tracker, flatten, numeric
from compress.track.loggers import CsvLogger, MissingExtra, MLflowLogger, TensorBoardLogger
from compress.track.make import LOGGERS, check_names, make_loggers, RunTracking

__all__ = ["Logger", "Tracker", "CsvLogger", "TensorBoardLogger", "MLflowLogger", "MissingExtra", "LOGGERS",
           "check_names", "make_loggers", "RunTracking", "flatten", "numeric"]
