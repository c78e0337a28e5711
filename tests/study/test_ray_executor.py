"""RayExecutor: options, task relocation, the CLI flags, and one real local Ray running a tiny sweep (same
records as the sequential executor, run folders written by the driver, failures recorded, Ctrl-C resumable).
The two-node test with a killed node is tests/study/test_ray_cluster.py (slow)."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

from compress.cli import main
from compress.study import RayExecutor, RayOptions, SequentialExecutor, SweepConfig, make_executor, run_sweep
from compress.study.ray_executor import relocate

DATA = "synthetic:n=240,classes=3,size=12"


def tiny(**kw):
    base = dict(data=DATA, families=("mlp",), budgets=(5_000,), policies=("width",), resolution=1.0, seeds=2,
                epochs=1, batch_size=32, latency=False)
    return SweepConfig(**{**base, **kw})


def same_figures(a, b):
    keys = ("run_id", "param_count", "macs", "bytes_fp32", "bytes_int8", "val_acc", "test_acc", "best_epoch",
            "run_dir")
    rows = lambda rs: sorted(tuple(r[k] for k in keys) for r in rs)  # noqa: E731
    return rows(a["records"]) == rows(b["records"])


@pytest.mark.parametrize("kw, match", [
    (dict(address="localhost"), "HOST:PORT"), (dict(address="host:99999"), "HOST:PORT"),
    (dict(cpus_per_run=0), "cpus_per_run"), (dict(cpus_per_run=float("nan")), "cpus_per_run"),
    (dict(gpus_per_run=-1), "gpus_per_run"), (dict(gpus_per_run=1.5), "whole number"),
    (dict(max_retries=-1), "max_retries"), (dict(max_retries=1.0), "max_retries"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        RayOptions(**kw)


def test_good_options():
    for address in (None, "auto", "10.0.0.5:6379", "ray://head:10001"):
        assert RayOptions(address=address).address == address
    assert RayOptions(cpus_per_run=0.5, gpus_per_run=0.25).gpus_per_run == 0.25


def test_make_executor_kinds():
    assert isinstance(make_executor(1), SequentialExecutor)
    with pytest.raises(ValueError, match="jobs=2 is for the local executor"):
        make_executor(2, kind="ray")
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor(kind="dask")
    with pytest.raises(ValueError, match="Ray options given"):
        make_executor(1, ray=RayOptions())


def test_make_executor_ray():
    pytest.importorskip("ray")   # RayExecutor refuses to exist without Ray (a ValueError naming the extra)
    ex = make_executor(kind="ray", ray=RayOptions(cpus_per_run=2))
    assert isinstance(ex, RayExecutor) and ex.options.cpus_per_run == 2


def test_the_ray_executor_without_ray_is_refused_naming_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)   # as where Ray is not installed: `import ray` raises ImportError
    with pytest.raises(ValueError, match=r"needs Ray: pip install \"compress\[ray\]\""):
        make_executor(kind="ray")
    assert main(["sweep", "--data", DATA, "--out", str(tmp_path), "--executor", "ray"]) == 2
    assert "needs Ray" in capsys.readouterr().err and not (tmp_path / "sweep.json").exists()


@dataclasses.dataclass(frozen=True)
class One:
    run_id: str
    run_dir: str


@dataclasses.dataclass(frozen=True)
class Fused:
    run_dirs: tuple
    seed: int = 0


def test_relocate_moves_output_folders_and_keeps_their_last_two_parts(tmp_path):
    task = One(run_id="a", run_dir="/sweeps/x/runs/a")
    local, moved = relocate(task, tmp_path)
    assert local.run_dir == str(tmp_path / "runs" / "a") and moved == {local.run_dir: "/sweeps/x/runs/a"}
    assert dataclasses.replace(local, run_dir=task.run_dir) == task
    fused, moved = relocate(Fused(run_dirs=("out/runs/a-s0", "out/runs/a-s1")), tmp_path)
    assert fused.run_dirs == (str(tmp_path / "runs" / "a-s0"), str(tmp_path / "runs" / "a-s1"))
    assert sorted(moved.values()) == ["out/runs/a-s0", "out/runs/a-s1"]
    assert relocate("no folders", tmp_path) == ("no folders", {})


@pytest.mark.parametrize("argv, match", [
    (["--cpus-per-run", "2"], "--cpus-per-run: only with --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
    (["--executor", "ray", "--address", "nohost"], "HOST:PORT"),
    (["--executor", "ray", "--gpus-per-run", "-1"], "gpus_per_run"),
])
def test_cli_rejects_bad_executor_options(argv, match, tmp_path, capsys):
    assert main(["sweep", "--data", DATA, "--out", str(tmp_path), *argv]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "sweep.json").exists()   # refused before any work


# ------------------------------------------------------------------------------- one real local Ray



class StopAfter:
    """Wraps an executor; raises KeyboardInterrupt (as Ctrl-C) after ``limit`` results."""

    def __init__(self, inner, limit):
        self.inner, self.limit = inner, limit

    def run(self, fn, tasks):
        for i, result in enumerate(self.inner.run(fn, tasks)):
            yield result
            if i + 1 == self.limit:
                raise KeyboardInterrupt


def test_real_ray_sweep_equals_sequential_and_resumes(local_ray, tmp_path, capsys):
    config = tiny(budgets=(5_000, 12_000))   # two points (tasks) of two seeds each
    seq = run_sweep(config, tmp_path / "seq", progress=None)
    with pytest.raises(KeyboardInterrupt):   # Ctrl-C after the first point: the other is cancelled
        run_sweep(config, tmp_path / "ray", executor=StopAfter(RayExecutor(), 1), progress=None)
    assert len(list((tmp_path / "ray" / "records").glob("*.json"))) == 2
    # the CLI resumes it on the Ray this process joined
    assert main(["sweep", "--data", DATA, "--families", "mlp", "--budgets", "5k,12k", "--seeds", "2", "--epochs",
                 "1", "--batch-size", "32", "--policies", "width", "--resolution", "1", "--no-latency", "--executor", "ray",
                 "--out", str(tmp_path / "ray")]) == 0
    assert "resuming: 2 of 4 runs already finished" in capsys.readouterr().out
    par = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert same_figures(seq, par) and par["failed"] == []
    for r in par["records"]:   # the driver wrote the run folders the workers returned, nothing else left behind
        run_dir = tmp_path / "ray" / r["run_dir"]
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in (tmp_path / "seq" / r["run_dir"]).iterdir())
        a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (run_dir, tmp_path / "seq" / r["run_dir"]))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in (tmp_path / "ray" / "runs").iterdir() if p.name.startswith(".")] == []


def test_real_ray_failing_runs_are_recorded_not_fatal(local_ray, tmp_path, capsys):
    out = tmp_path / "bad"
    status = main(["sweep", "--data", DATA, "--families", "mlp", "--budgets", "5k", "--seeds", "2", "--epochs", "1",
                   "--policies", "width", "--no-latency", "--set", "teacher=/nonexistent/run", "--executor", "ray", "--out", str(out)])
    assert status == 1
    err = capsys.readouterr().err
    assert "2 runs failed" in err and "/nonexistent/run" in err
    results = json.loads((out / "results.json").read_text())
    assert results["records"] == [] and len(results["failed"]) == 2
    assert {f["run_id"] for f in results["failed"]} == {p.stem for p in (out / "failed").glob("*.json")}
    assert all("FileNotFoundError" in f["error"] for f in results["failed"])
    assert not (out / "runs").exists() or not any((out / "runs").iterdir())
    assert Path(out / "sweep.json").exists()


def test_real_ray_pruning_study_equals_sequential_and_resumes(local_ray, tmp_path):
    """``--methods scale,prune,prune-scratch`` on Ray: the sources, pruned and scratch runs go through the
    RayExecutor (run folders returned to the driver); Ctrl-C part-way, then a resume, gives the sequential
    records."""
    from compress.study.pruning import run_pruning_study

    config = tiny(budgets=(5_000, 12_000), seeds=2, epochs=2)
    seq = run_pruning_study(config, tmp_path / "seq", progress=None)
    with pytest.raises(KeyboardInterrupt):   # Ctrl-C after 3 of the 4 pruned tasks (2 scale points, 1 source task)
        run_pruning_study(config, tmp_path / "ray", executor=StopAfter(RayExecutor(), 3), progress=None)
    assert len(list((tmp_path / "ray" / "pruning" / "records").glob("*.json"))) == 2 + 3 * 2
    run_pruning_study(config, tmp_path / "ray", executor=RayExecutor(), progress=None)
    par = json.loads((tmp_path / "ray" / "pruning.json").read_text())
    rows = lambda doc: sorted((r["run_id"], r["param_count"], r["val_acc"], r["epochs"], r["run_dir"])  # noqa: E731
                              for r in doc["records"] + doc["sources"])
    assert rows(par) == rows(seq) and len(par["records"]) == 12 and par["failed"] == []
    for r in par["records"]:
        assert (tmp_path / "ray" / r["run_dir"] / "checkpoint.pt").exists()
    assert [p.name for p in (tmp_path / "ray" / "pruning" / "runs").iterdir() if p.name.startswith(".")] == []


class DiesOnWorker:
    """A task function that kills its own Ray worker process: ``"once-X"`` on its first attempt only (a marker
    file remembers it), ``"always-X"`` every time; other tasks return themselves."""

    def __init__(self, folder):
        self.folder = str(folder)

    def __call__(self, task):
        import os

        marker = Path(self.folder, task)
        if task.startswith("always") or (task.startswith("once") and not marker.exists()):
            marker.touch()
            os._exit(1)   # as if the OOM killer took the worker
        return task

    def failed(self, task, error):
        return f"failed {task}: {error}"


def test_a_killed_worker_is_retried_and_a_lost_run_is_failed(local_ray, tmp_path):
    local_ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import this file
    results = list(RayExecutor(RayOptions(max_retries=1)).run(DiesOnWorker(tmp_path), ["ok", "once-a", "always-b"]))
    assert len(results) == 3 and sorted(r for r in results if not r.startswith("failed")) == ["ok", "once-a"]
    (lost,) = [r for r in results if r.startswith("failed")]
    assert lost.startswith("failed always-b: ") and "after 1 retries" in lost
    with pytest.raises(ValueError, match="cpus_per_run=2, but the largest node of the Ray cluster has 1 CPUs"):
        list(RayExecutor(RayOptions(cpus_per_run=2)).run(DiesOnWorker(tmp_path), ["ok"]))
    with pytest.raises(ValueError, match="gpus_per_run=0.5, but the largest node of the Ray cluster has 0 GPUs"):
        list(RayExecutor(RayOptions(gpus_per_run=0.5)).run(DiesOnWorker(tmp_path), ["ok"]))


def test_an_address_where_nothing_answers_is_refused_at_once(tmp_path, capsys):
    import socket

    pytest.importorskip("ray")   # without Ray, RayExecutor refuses before it looks at the address
    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match=f"no Ray cluster answers at address '127.0.0.1:{port}'"):
        RayExecutor(RayOptions(address=f"127.0.0.1:{port}"))
    assert main(["sweep", "--data", DATA, "--out", str(tmp_path), "--executor", "ray", "--address",
                 f"127.0.0.1:{port}"]) == 2
    assert "no Ray cluster answers" in capsys.readouterr().err and not (tmp_path / "sweep.json").exists()
