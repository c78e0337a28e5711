"""Executors: where a sweep's runs train. One interface, ``run(fn, tasks)``, yielding results as they finish.

:class:`SequentialExecutor` runs in this process; :class:`ProcessExecutor` is a local pool of spawned workers with
the CPU's cores divided between them; :class:`~compress.study.ray_executor.RayExecutor` runs on a Ray cluster
(``pip install "compress[ray]"``, imported only when used). Executors ship ``fn`` (which may carry the data) once
per worker, not once per task. Anything with the same method can take the runs.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Protocol

from compress.device import torch_threads

__all__ = ["Executor", "SequentialExecutor", "ProcessExecutor", "EXECUTORS", "make_executor"]


class Executor(Protocol):
    def run(self, fn: Callable[[Any], Any], tasks: list) -> Iterator[Any]:
        """Run ``fn(task)`` for every task; yield the results as they finish (any order)."""


class SequentialExecutor:
    """Runs tasks one after another in this process (``threads``: torch CPU threads, default unchanged)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, fn, tasks):
        with torch_threads(self.threads):
            for task in tasks:
                yield fn(task)


_WORKER_FN: Callable[[Any], Any] | None = None


def _init_worker(threads: int, fn: Callable[[Any], Any]) -> None:
    import torch

    global _WORKER_FN
    torch.set_num_threads(threads)   # for the worker's whole life: nothing to restore
    _WORKER_FN = fn                  # pickled once per worker, not once per task (it may hold the data)


def _call_worker_fn(task: Any) -> Any:
    assert _WORKER_FN is not None, "worker started without its function"
    return _WORKER_FN(task)


class ProcessExecutor:
    """A local pool of ``jobs`` worker processes (spawned), the CPU's cores divided between them."""

    def __init__(self, jobs: int, threads_per_job: int | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.threads = threads_per_job or max(1, (os.cpu_count() or 1) // jobs)

    def run(self, fn, tasks):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(self.threads, fn)) as pool:
            pending = {pool.submit(_call_worker_fn, t) for t in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            finally:
                for fut in pending:
                    fut.cancel()


EXECUTORS = ("local", "ray")


def make_executor(jobs: int = 1, *, kind: str = "local", ray: Any = None) -> Executor:
    """``kind="local"``: one job is a :class:`SequentialExecutor`, more a :class:`ProcessExecutor` of ``jobs``
    workers. ``kind="ray"``: a :class:`~compress.study.ray_executor.RayExecutor` with ``ray`` (a ``RayOptions``;
    default RayOptions()); Ray decides how many runs go at once from the cluster's CPUs and GPUs, so ``jobs``
    must stay 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}")
    if kind == "ray":
        if jobs != 1:
            raise ValueError(f"jobs={jobs} is for the local executor; on Ray, runs go at once as the cluster's "
                             "CPUs and GPUs allow (set cpus_per_run / gpus_per_run)")
        from compress.study.ray_executor import RayExecutor

        return RayExecutor(ray)
    if ray is not None:
        raise ValueError("Ray options given for the local executor; pass kind='ray'")
    return SequentialExecutor() if jobs == 1 else ProcessExecutor(jobs)
