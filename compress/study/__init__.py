"""The study: resumable sweeps, their executors, statistics, figures and the report.

Rooms:
    sweep       ``SweepConfig``, ``run_sweep``: families x budgets x scaling policies, all seeds of a point trained
                together (``PointTask``), kill-safe and resumable
    executors   ``SequentialExecutor``, ``ProcessExecutor``: where runs train (one ``run(fn, tasks)`` interface)
    ray_executor  ``RayExecutor``, ``RayOptions``: the same on a Ray cluster (optional ``ray`` extra, imported lazily)
    results     ``load_results``, ``summarize`` (means and intervals per point), ``best_record``
    stats       Student-t / Wilson intervals and the tie rule (``verdict``)
    plots       figures from results only
    report      ``write_report``: Markdown and figures under ``reports/``
    pipeline    ``run_study``: sweep + explain the best model + report (the README's main job)
    pruning     ``run_pruning_study`` (``sweep --methods scale,prune,prune-scratch``, Liu et al. 2019): its runs are
                ``pruning_tasks.PruneTask``s through the same executors; ``pruning_report`` writes its section
"""

from compress.study.executors import EXECUTORS, Executor, ProcessExecutor, SequentialExecutor, make_executor
from compress.study.pipeline import STUDY_ABLATIONS, default_folder, run_study
from compress.study.ray_executor import RayExecutor, RayOptions   # imports Ray only when a sweep runs on it
from compress.study.report import write_report
from compress.study.results import best_record, load_results, summarize
from compress.study.stats import Interval, mean_ci, verdict
from compress.study.sweep import ABLATIONS, PointTask, SweepConfig, Trainer, execute, run_sweep

__all__ = ["SweepConfig", "PointTask", "Trainer", "run_sweep", "execute", "ABLATIONS", "Executor", "EXECUTORS",
           "SequentialExecutor", "ProcessExecutor", "RayExecutor", "RayOptions", "make_executor", "load_results",
           "summarize", "best_record", "Interval", "mean_ci", "verdict", "write_report", "run_study",
           "STUDY_ABLATIONS", "default_folder"]
