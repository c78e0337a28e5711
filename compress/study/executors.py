"""Executors: where a sweep's runs train. One interface, ``run(fn, tasks)``, yielding results as they finish.

:class:`SequentialExecutor` runs in this process; :class:`ProcessExecutor` is a local pool of spawned workers with
the CPU's cores divided between them; :class:`~compress.study.ray_executor.RayExecutor` runs on a Ray cluster
(``pip install "compress[ray]"``, imported only when used). Executors ship ``fn`` (which may carry the data) once
per worker, not once per task. Anything with the same method can take the runs.

Workers end with the sweep that started them: a killed sweep (SIGKILL, a crash) must not leave workers that go on
training and writing ``runs/*`` into a folder whose lock is gone. On Linux the kernel kills each worker when its
parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); everywhere a watchdog thread in the worker ends it once its
parent PID changes (it was reparented). SIGTERM on the sweep (while the pool runs in the main thread and nobody
else handles SIGTERM) raises ``SystemExit(143)`` there, so the pool's workers are stopped, the sweep lock is
released and the process exits as SIGTERM asks; so do Ctrl-C and a caller that stops iterating: the points in
flight are lost (a rerun redoes them), nothing is left running.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
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


_PARENT_POLL_S = 0.5   # how often a worker's watchdog looks whether its parent is still there
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _init_worker(threads: int, fn: Callable[[Any], Any], parent: int | None = None) -> None:
    import torch

    global _WORKER_FN
    if parent is not None:
        end_with_parent(parent)
    torch.set_num_threads(threads)   # for the worker's whole life: nothing to restore
    _WORKER_FN = fn                  # pickled once per worker, not once per task (it may hold the data)


def end_with_parent(parent: int, *, deathsig: bool = True) -> None:
    """Make this process end when process ``parent`` (its parent now) does: on Linux (``deathsig``) the kernel
    sends it SIGKILL as the parent dies; everywhere, a daemon thread checks ``os.getppid()`` every
    :data:`_PARENT_POLL_S` seconds and exits the process once it is no longer ``parent`` (reparented)."""
    if deathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):   # no libc or no prctl: the watchdog alone
            pass
    if os.getppid() != parent:   # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="compress-parent-watchdog", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)   # orphaned: the sweep is gone, and so is its lock; write nothing more


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
        pool = ProcessPoolExecutor(self.jobs, mp_context=ctx, initializer=_init_worker,
                                   initargs=(self.threads, fn, os.getpid()))
        finished = False
        try:
            with _sigterm_exits():
                pending = {pool.submit(_call_worker_fn, t) for t in tasks}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
                finished = True
        finally:
            if not finished:   # an error, Ctrl-C, SIGTERM or a caller that stopped: stop the points in flight
                _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes now (their points are lost; a rerun of the sweep redoes them)."""
    terminate = getattr(pool, "terminate_workers", None)   # Python 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


class _Terminated(SystemExit):
    """SIGTERM arrived while a process pool ran."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated(128 + signal.SIGTERM)


class _sigterm_exits:
    """While the block runs in the main thread: SIGTERM raises SystemExit(143) (the block's cleanup runs: the
    workers stop, the sweep lock goes) instead of ending the process at once, leaving the workers orphaned.
    A handler someone else installed is kept; the previous handler comes back afterwards."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self.previous = signal.signal(signal.SIGTERM, _on_sigterm)
        return self

    def __exit__(self, *exc):
        if self.previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.previous)
        return False


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
