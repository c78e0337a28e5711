"""Executors: where a sweep's runs train. One interface, ``run(fn, tasks)``, yielding results as they finish.

:class:`SequentialExecutor` runs in this process; :class:`ProcessExecutor` is a local pool of spawned workers with
the CPU's cores divided between them. Anything with the same method (a distributed engine) can take the runs.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Protocol

from compress.device import torch_threads

__all__ = ["Executor", "SequentialExecutor", "ProcessExecutor", "make_executor"]


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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)   # for the worker's whole life: nothing to restore


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
                                 initargs=(self.threads,)) as pool:
            pending = {pool.submit(fn, t) for t in tasks}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
            finally:
                for fut in pending:
                    fut.cancel()


def make_executor(jobs: int) -> Executor:
    """One job: :class:`SequentialExecutor`; more: a :class:`ProcessExecutor` of ``jobs`` workers."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    return SequentialExecutor() if jobs == 1 else ProcessExecutor(jobs)
