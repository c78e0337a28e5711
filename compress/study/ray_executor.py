"""Sweeps on a Ray cluster: :class:`RayExecutor`, the executor interface (``run(fn, tasks)``) on Ray tasks.

Ray is used the way it is meant to be used, with no runner of our own around it:

- ``fn`` (the study's :class:`~compress.study.runner.TaskRunner`, which holds the data bundle) goes into the
  object store once (``ray.put``); every task reads it from there, so no worker reads the data source itself.
- No shared filesystem: a task writes its run folders (the task's ``run_dir``, or each of its ``run_dirs``) into a
  private temporary folder on its worker and returns their files with its result; the driver writes them where
  the task named them (staged beside the target, then renamed) before it yields the result, so the sweep writes
  a run's record only once its folder is complete. Resuming therefore works as with the local executors.
- A task whose worker process or node dies is started again elsewhere by Ray (``max_retries``); one whose
  argument was lost with a dying node as it started (Ray reports that as the task's own error) is resubmitted by
  the driver, as often. A task that raises is not retried. A task lost more often than that comes back as
  ``fn.failed(task, error)`` (failed records) when ``fn`` offers it. On Ctrl-C (or when the caller stops
  iterating) the pending tasks are cancelled.

Ray is an optional dependency (``pip install "compress[ray]"``), imported only when a sweep runs on it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

from compress import _io

__all__ = ["RayOptions", "RayExecutor"]

_OUTPUT_FIELDS = ("run_dir", "run_dirs")   # the task fields naming the folders a task writes


@dataclass
class RayOptions:
    """Where and how a sweep runs on Ray. ``address``: ``"auto"`` joins the cluster running on this machine;
    ``HOST:PORT`` joins a cluster's head; None joins the cluster in the environment variable RAY_ADDRESS when it
    is set (as inside a Ray job), and otherwise starts a private Ray on this machine for the sweep."""

    address: str | None = None
    cpus_per_run: float = 1.0      # CPU cores Ray reserves for each task (a sweep's point with its seeds; fractions
                                   # allowed); its torch threads: at least 1
    gpus_per_run: float = 0.0      # GPUs per task; a fraction (0.25) lets several tasks share one GPU
    max_retries: int = 3           # times a task lost with its worker or node is started again
    connect_timeout_s: float = 30.0   # seconds a HOST:PORT may take to accept a connection and answer as a Ray
                                      # head (gRPC) before the sweep is refused

    def __post_init__(self) -> None:
        if self.address is not None:
            _check_address(self.address)
        for name in ("cpus_per_run", "gpus_per_run"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RayOptions: {name} must be a number >= 0, got {value!r}")
        if self.cpus_per_run <= 0:
            raise ValueError(f"RayOptions: cpus_per_run must be > 0, got {self.cpus_per_run!r}")
        if self.gpus_per_run > 1 and self.gpus_per_run != int(self.gpus_per_run):
            raise ValueError(f"RayOptions: gpus_per_run above 1 must be a whole number (Ray's rule), "
                             f"got {self.gpus_per_run!r}")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"RayOptions: max_retries must be an int >= 0, got {self.max_retries!r}")
        t = self.connect_timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 3600:
            raise ValueError(f"RayOptions: connect_timeout_s must be a number of seconds in (0, 3600], got {t!r}")


def _check_address(address: str) -> None:
    if not isinstance(address, str):
        raise TypeError(f"RayOptions: address must be a string, got {type(address).__name__}")
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"RayOptions: address {address!r} must be 'auto' or HOST:PORT (e.g. 10.0.0.5:6379)")


class RayExecutor:
    """Runs tasks as Ray tasks, each with ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs reserved, spread over the
    cluster's nodes; yields results as they finish. Uses the Ray this process already joined (``ray.init``) if
    any, otherwise joins ``options.address`` (or starts a private local Ray) for the sweep and leaves it after."""

    def __init__(self, options: RayOptions | None = None) -> None:
        if options is not None and not isinstance(options, RayOptions):
            raise TypeError(f"RayExecutor: options must be RayOptions, got {type(options).__name__}")
        self.options = options or RayOptions()
        _import_ray()   # fail now, before any data is loaded, when Ray is not installed
        # and when no Ray answers at the address
        _check_reachable(_target(self.options.address), self.options.connect_timeout_s)

    def run(self, fn: Callable[[Any], Any], tasks: list) -> Iterator[Any]:
        ray = _import_ray()
        o = self.options
        joined = _join(ray, o.address, o.connect_timeout_s)
        pending: dict = {}   # ObjectRef -> (task index, task)
        try:
            _check_fits(ray, o)
            fn_ref = ray.put(fn)   # the data travel with fn: into the object store once
            remote = ray.remote(_run_on_worker).options(
                num_cpus=o.cpus_per_run, num_gpus=o.gpus_per_run, max_retries=o.max_retries,
                retry_exceptions=False, scheduling_strategy="SPREAD")
            threads = max(1, int(o.cpus_per_run))
            pending = {remote.remote(fn_ref, task, threads): (i, task) for i, task in enumerate(tasks)}
            resubmitted: dict[int, int] = {}
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                index, task = pending.pop(ref)
                try:
                    result, folders = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    lost = _lost_cause(ray, exc)   # raises when fn itself raised
                    if isinstance(exc, ray.exceptions.RayTaskError) and resubmitted.get(index, 0) < o.max_retries:
                        # An argument was lost with a dying node while the task started: Ray counts that as the
                        # task's own error and does not retry it, so the driver does (bounded as Ray's retries).
                        resubmitted[index] = resubmitted.get(index, 0) + 1
                        pending[remote.remote(fn_ref, task, threads)] = (index, task)
                        continue
                    yield self._failed(fn, task, lost, exc)
                    continue
                for dest, files in folders.items():   # the run folders first, then the result (the record)
                    _write_folder(Path(dest), files)
                yield result
        finally:
            for ref in pending:   # Ctrl-C or the caller stopped: leave nothing running for a sweep that is gone
                try:
                    ray.cancel(ref, force=True)
                except Exception:   # noqa: BLE001 - the cluster may be gone already; nothing left to cancel
                    pass
            if joined:
                ray.shutdown()

    def _failed(self, fn, task, lost: BaseException, exc: BaseException) -> Any:
        """A task lost to the cluster more than ``max_retries`` times: ``fn.failed(task, error)``, or the error
        itself when ``fn`` has no ``failed``."""
        failed = getattr(fn, "failed", None)
        if failed is None:
            raise exc
        text = str(lost).strip()
        reason = text.splitlines()[0] if text else ""
        return failed(task, f"{type(lost).__name__}: lost with its Ray worker or node after "
                            f"{self.options.max_retries} retries ({reason})")


def _lost_cause(ray, exc: BaseException) -> BaseException:
    """The cluster failure behind ``exc`` (worker or node died, object lost, cancelled); re-raises ``exc`` when
    the task's function itself raised (a RayTaskError caused by anything but a Ray error), as the local
    executors do."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, ray.exceptions.RayError):
            raise exc
        return cause
    return exc


# ------------------------------------------------------------------------------------------- on the worker

def _run_on_worker(fn: Callable[[Any], Any], task: Any, threads: int) -> tuple[Any, dict[str, dict[str, bytes]]]:
    """Run ``fn`` on a copy of ``task`` that writes under a private temporary folder; return the result and
    the files of every folder the task wrote, keyed by where the driver wants them."""
    import torch

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="compress-ray-") as tmp:
        local_task, moved = relocate(task, Path(tmp))
        result = fn(local_task)
        folders = {dest: _read_folder(Path(src)) for src, dest in moved.items() if Path(src).is_dir()}
    return result, folders


def relocate(task: Any, root: Path) -> tuple[Any, dict[str, str]]:
    """A copy of ``task`` whose output folders (its ``run_dir`` field, or each of ``run_dirs``) lie under ``root``,
    and ``{new folder: original folder}``. Each folder keeps its last two path parts (``runs/ID``), so paths a
    result gives relative to the sweep folder stay true. A task with neither field is returned unchanged."""
    changes: dict[str, Any] = {}
    moved: dict[str, str] = {}   # new folder -> original folder
    for name in _OUTPUT_FIELDS:
        if not hasattr(task, name):
            continue
        value = getattr(task, name)
        many = isinstance(value, (list, tuple))
        local = [str(root / Path(d).parent.name / Path(d).name) for d in (value if many else [value])]
        moved.update(zip(local, value if many else [value]))
        changes[name] = type(value)(local) if many else local[0]
    if not changes:
        return task, moved
    if not dataclasses.is_dataclass(task) or isinstance(task, type):
        raise TypeError(f"RayExecutor: a task with output folders must be a dataclass, got {type(task).__name__}")
    return dataclasses.replace(task, **changes), moved


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------- on the driver

def _write_folder(dest: Path, files: dict[str, bytes]) -> None:
    """Write a run folder that came back from a worker: staged beside ``dest`` (a hidden folder the sweep's
    cleanup removes if this is killed), then renamed onto it."""
    stage = dest.parent / f".{dest.name}.partial-ray-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        for rel, data in files.items():
            path = Path(rel)
            assert not path.is_absolute() and ".." not in path.parts, f"file {rel!r} escapes its run folder"
            _io.write_bytes(stage / path, data)
        stage.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(stage, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _check_fits(ray, o: RayOptions) -> None:
    """Refuse runs no node of the cluster can hold (Ray would wait for such a node forever)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    for key, need, flag in (("CPU", o.cpus_per_run, "cpus_per_run"), ("GPU", o.gpus_per_run, "gpus_per_run")):
        have = max((n.get(key, 0.0) for n in nodes), default=0.0)
        if need > have:
            raise ValueError(f"{flag}={need:g}, but the largest node of the Ray cluster has {have:g} {key}s")


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError("the Ray executor needs Ray: pip install \"compress[ray]\" (on every machine of the "
                         "cluster)") from None
    return ray


def _target(address: str | None) -> str:
    """What ``ray.init`` gets: the address, else RAY_ADDRESS, else "local" (a new private Ray; Ray's own None
    would join a cluster that ``ray start`` left on this machine)."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


# What a gRPC (HTTP/2) client sends first: the connection preface and an empty SETTINGS frame. A Ray head (GCS, or
# a Ray Client server) is a gRPC server, which answers with a SETTINGS frame of its own (RFC 9113, 3.4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def _check_reachable(address: str, timeout_s: float = RayOptions.connect_timeout_s) -> None:
    """Refuse a HOST:PORT where no Ray head answers within ``timeout_s`` seconds in all: nothing accepts a
    connection, or what does is silent, closes, or does not answer as a gRPC server (HTTP/2) would. ``ray.init``
    would wait there for minutes. With TLS (RAY_USE_TLS) only the connection is checked."""
    if address in ("auto", "local"):
        return
    _check_address(address)
    host, _, port = address.removeprefix("ray://").rpartition(":")
    deadline = time.monotonic() + timeout_s

    def refuse(why: str) -> NoReturn:
        raise ValueError(f"no Ray cluster answers at address {address!r} ({why}); start one there with "
                         "`ray start --head --port PORT`, or check the address")

    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    except OSError as exc:
        refuse(str(exc) or type(exc).__name__)
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return
        head = b""
        try:
            sock.sendall(_HTTP2_PREFACE)
            while len(head) < 9:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    refuse("something there accepted the connection and closed it: not a Ray head")
                head += chunk
        except TimeoutError:
            refuse(f"something there accepted the connection but did not answer within {timeout_s:g} s: "
                   "not a Ray head")
        except OSError as exc:   # reset, broken pipe
            refuse(f"something there accepted the connection and closed it ({exc.strerror or exc}): not a Ray head")
    if head[3] != _SETTINGS or head[5:9] != bytes(4):
        refuse(f"something there answered {head[:9]!r}, which is not gRPC: not a Ray head")


def _join(ray, address: str | None, timeout_s: float = RayOptions.connect_timeout_s) -> bool:
    """Join (or start) Ray unless this process already has; True when the executor did and must leave it."""
    if ray.is_initialized():
        return False
    address = _target(address)
    _check_reachable(address, timeout_s)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and address == "local":   # starting a private Ray failed: Ray's error
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"no Ray cluster at address {address!r} ({first[:200]}); start one with "
                         "`ray start --head`") from None
    return True
