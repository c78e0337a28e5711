"""A sweep on a real two-node Ray cluster (a head and a second node started with ``ray start``, one CPU each),
with one worker process and then the whole second node killed mid-run: every run finishes exactly once, and the
records equal those of the same sweep on the process executor.

Multi-node Ray binds to the machine's outward address even when told 127.0.0.1, so the test re-runs itself in a
private network namespace (``unshare --net``: loopback and a veth pair, nodes at 10.254.0.1 and 10.254.0.2); it
needs root and skips otherwise.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from compress.study import ProcessExecutor, RayExecutor, RayOptions, SweepConfig, run_sweep

pytestmark = pytest.mark.slow

HEAD, SECOND, PORT = "10.254.0.1", "10.254.0.2", 6391
INSIDE = "COMPRESS_TEST_NETNS"
NETNS = """set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up; ip link set v1 up
ip addr add 10.254.0.1/24 dev v0; ip addr add 10.254.0.2/24 dev v1
exec "$@"
"""
# The head notices a dead node in about 2 s instead of about 15 (health checks every 500 ms, 3 misses).
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
               "RAY_health_check_timeout_ms": "1000", "RAY_health_check_initial_delay_ms": "1000",
               "RAY_AUTH_MODE": "disabled"}


def test_two_node_sweep_survives_killed_worker_and_node(tmp_path):
    if os.environ.get(INSIDE) != "1":
        _rerun_in_private_network(tmp_path)
        return
    config = SweepConfig(data="synthetic:n=240,classes=3,size=12", families=("cnn", "mlp"), budgets=(5_000,),
                         policies=("width",), resolution=1.0, seeds=2, epochs=1, patience=None, batch_size=32, latency=False)
    local = run_sweep(config, tmp_path / "local", executor=ProcessExecutor(2, threads_per_job=1), progress=None)
    root = Path(tempfile.mkdtemp(prefix="cr", dir="/tmp"))   # short: Ray's socket paths live under it
    markers = root / "started"
    markers.mkdir()
    killer = Killer(markers, second_node=root / "second")
    killer.start()
    try:
        _ray_start(root / "head", "--head", "--port", str(PORT), "--node-ip-address", HEAD,
                   "--include-dashboard", "false")
        _ray_start(root / "second", "--address", f"{HEAD}:{PORT}", "--node-ip-address", SECOND)
        executor = Marking(RayExecutor(RayOptions(address=f"{HEAD}:{PORT}", max_retries=3)), markers)
        ray = run_sweep(config, tmp_path / "ray", executor=executor, progress=None)
    finally:
        killer.stop.set()
        killer.join()
        _kill_tree(str(root))
        shutil.rmtree(root, ignore_errors=True)
    assert killer.killed_worker and killer.killed_node, f"not both killed mid-run; task starts: {killer.seen}"
    ids = [r["run_id"] for r in ray["records"]]
    assert len(ids) == len(set(ids)) == 4 and ray["failed"] == []
    assert sorted(p.stem for p in (tmp_path / "ray" / "records").glob("*.json")) == sorted(ids)
    points = {i.rsplit("-s", 1)[0] for i in ids}
    assert {killer.killed_worker, killer.killed_node} <= points   # the killed points were redone elsewhere
    keys = ("run_id", "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "val_acc", "test_acc",
            "best_epoch", "epochs", "n_val", "n_test", "run_dir")
    rows = lambda rs: sorted(tuple(r[k] for k in keys) for r in rs)  # noqa: E731
    assert rows(ray["records"]) == rows(local["records"])
    for r in ray["records"]:
        assert json.loads((tmp_path / "ray" / r["run_dir"] / "metrics.json").read_text())["val_acc"] == r["val_acc"]
    assert not [p for p in (tmp_path / "ray" / "runs").iterdir() if p.name.startswith(".")]


def _rerun_in_private_network(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("a multi-node Ray test needs root, unshare and ip (a private network namespace)")
    pytest.importorskip("ray")
    test = f"{__file__}::test_two_node_sweep_survives_killed_worker_and_node"
    cmd = ["unshare", "--net", "--fork", "bash", "-c", NETNS, "netns", sys.executable, "-m", "pytest", test, "-q",
           "-x", "-p", "no:randomly", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner")]
    # Ray settings of this process (ray.init leaves RAY_AUTH_MODE=token behind) must not reach the cluster's
    # driver: all of it runs with authentication off, as the nodes do.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {INSIDE: "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "1 passed" in proc.stdout


def _ray_start(temp_dir: Path, *args: str) -> None:
    ray_cli = Path(sys.executable).parent / "ray"
    subprocess.run([str(ray_cli), "start", *args, "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
                    "--disable-usage-stats", "--temp-dir", str(temp_dir)],
                   env={**os.environ, **FAST_HEALTH}, check=True, capture_output=True, timeout=120)


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), read from /proc (the test is Linux-only anyway)."""
    procs = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((d / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):   # exited meanwhile
                continue
            procs[int(d.name)] = (ppid, cmdline)
    return procs


def _kill_tree(needle: str) -> list[int]:
    """SIGKILL every process whose command line holds ``needle``, with all its descendants; their pids."""
    procs = _processes()
    victims = {pid for pid, (_, cmd) in procs.items() if needle in cmd and pid != os.getpid()}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in procs.items() if ppid in victims} - victims
        victims |= children
        grew = bool(children)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return sorted(victims)


class Killer(threading.Thread):
    """Watches the runs' start markers: kills the first worker process that starts a run on the head, then the
    whole second node (its raylet and everything under it) when a run starts there."""

    def __init__(self, markers: Path, second_node: Path):
        super().__init__(daemon=True)
        self.markers, self.second_node = markers, second_node
        self.killed_worker = self.killed_node = None
        self.seen: list[str] = []   # the markers, in the order the Killer saw them
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and not (self.killed_worker and self.killed_node):
            for m in sorted(self.markers.iterdir()):
                if m.name not in self.seen:
                    self.seen.append(m.name)
                ip, run_id, pid = m.name.split("~")
                if ip == HEAD and not self.killed_worker:
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed_worker = run_id
                elif ip == SECOND and not self.killed_node:
                    _kill_tree(str(self.second_node))
                    self.killed_node = run_id
            time.sleep(0.05)


class SlowFirstAttempt:
    """``fn`` that marks each run's start (node address, run, worker pid) and, on a run's first attempt, waits
    2 s before training, so the Killer strikes mid-run. Keeps ``fn.failed``."""

    def __init__(self, fn, markers: Path):
        self.fn, self.markers = fn, str(markers)

    def __call__(self, task):
        import ray

        first = not any(m.split("~")[1] == task.task_id for m in os.listdir(self.markers))
        Path(self.markers, f"{ray.util.get_node_ip_address()}~{task.task_id}~{os.getpid()}").touch()
        if first:
            time.sleep(2)
        return self.fn(task)

    def failed(self, task, error):
        return self.fn.failed(task, error)


class Marking:
    """An executor that runs the sweep's ``fn`` wrapped in :class:`SlowFirstAttempt` on ``inner``."""

    def __init__(self, inner, markers: Path):
        self.inner, self.markers = inner, markers

    def run(self, fn, tasks):
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import this test file
        return self.inner.run(SlowFirstAttempt(fn, self.markers), tasks)
