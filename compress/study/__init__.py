"""The study: resumable sweeps, their executors, statistics, figures and the report.

Rooms:
    config        ``SweepConfig``, ``ABLATIONS``: what a sweep trains
    tasks         ``Task`` (a group of seeds trained together: what an executor ships), ``run_id`` (the one way run
                  ids are built), ``longest_first``
    points        ``PointTask`` (one point: family x budget x policy x variant), the points of a config, their
                  sizing (``sizing.json``) and the point tasks still to train
    runner        ``TaskRunner``: the one runner of any task (the executors' ``fn``; failed records), ``execute``,
                  ``train_seeds``
    data_cache    ``load_data`` (per process), ``sweep_data`` (the bundle a sweep's runs share)
    records       ``RecordBook`` (records/ID.json, failed/ID.json), ``read_records``, ``clean_partial_runs``,
                  ``write_results`` (results.json, results.csv)
    sweep         ``run_sweep``: families x budgets x scaling policies, kill-safe and resumable
    lock          ``folder_lock``: one sweep per folder
    executors     ``SequentialExecutor``, ``ProcessExecutor``: where runs train (one ``run(fn, tasks)`` interface)
    ray_executor  ``RayExecutor``, ``RayOptions``: the same on a Ray cluster (optional ``ray`` extra, imported lazily)
    results       ``load_results``, ``summarize`` (means and intervals per point), ``best_record``
    stats         Student-t / Wilson intervals and the tie rule (``verdict``)
    plots         figures from results only
    report        ``write_report``: Markdown and figures under ``reports/``
    pipeline      ``run_study``: sweep + explain the best model + report (the README's main job)
    pruning       ``run_pruning_study`` (``sweep --methods scale,prune,prune-scratch``, Liu et al. 2019)
    pruning_tasks ``PruneTask`` (run by the same ``TaskRunner`` and executors), the source and pruned tasks
    pruning_report  the pruning section of the report
"""

from compress.study.config import ABLATIONS, SweepConfig
from compress.study.executors import EXECUTORS, Executor, ProcessExecutor, SequentialExecutor, make_executor
from compress.study.pipeline import STUDY_ABLATIONS, default_folder, run_study
from compress.study.points import PointTask
from compress.study.pruning import run_pruning_study
from compress.study.pruning_tasks import PruneTask
from compress.study.ray_executor import RayExecutor, RayOptions   # imports Ray only when a sweep runs on it
from compress.study.report import write_report
from compress.study.results import best_record, load_results, summarize
from compress.study.runner import TaskRunner, execute
from compress.study.stats import Interval, mean_ci, verdict
from compress.study.sweep import run_sweep
from compress.study.tasks import Task, run_id

__all__ = ["SweepConfig", "ABLATIONS", "Task", "PointTask", "PruneTask", "run_id", "TaskRunner", "execute",
           "run_sweep", "run_pruning_study", "Executor", "EXECUTORS", "SequentialExecutor", "ProcessExecutor",
           "RayExecutor", "RayOptions", "make_executor", "load_results", "summarize", "best_record", "Interval",
           "mean_ci", "verdict", "write_report", "run_study", "STUDY_ABLATIONS", "default_folder"]
