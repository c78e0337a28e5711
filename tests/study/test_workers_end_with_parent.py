"""Process-pool workers end with the sweep that started them (issue 27, N11): a sweep killed with SIGKILL or
SIGTERM leaves no worker training on and writing runs/* into a folder whose lock is gone. Processes are found
through /proc (psutil may not be installed), so the tests run where there is one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress.study.executors import ProcessExecutor

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")

SWEEP = ["sweep", "--data", "synthetic:n=600,classes=3,size=12", "--families", "mlp,cnn", "--budgets", "5k,20k",
         "--seeds", "1", "--epochs", "200", "--patience", "200", "--no-latency", "--jobs", "2"]


def _state(pid: int) -> str | None:
    """The process's state letter, None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def _gone(pid: int) -> bool:
    return _state(pid) in (None, "Z", "X")   # a zombie is dead; in a container nobody may reap it


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and not _gone(int(entry.name)):
            kids.append(int(entry.name))
    return kids


def _wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _start_sweep(out: Path) -> tuple[subprocess.Popen, list[int]]:
    """A `compress sweep --jobs 2` whose two workers are training (a run folder is being written)."""
    proc = subprocess.Popen([sys.executable, "-m", "compress", *SWEEP, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = _wait_for(lambda: (lambda k: k if len(k) >= 2 else None)(
            [p for p in _children(proc.pid) if b"spawn_main" in _cmdline(p)]),
            120, "two workers")
        _wait_for(lambda: (out / "runs").is_dir() and any((out / "runs").iterdir()), 120, "a run being trained")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, workers


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_sweep_leaves_no_worker_running(tmp_path, sig):
    out = tmp_path / "sweep"
    proc, workers = _start_sweep(out)
    everyone = [*workers, *_children(proc.pid)]
    try:
        os.kill(proc.pid, sig)
        rc = proc.wait(timeout=30)
        _wait_for(lambda: all(_gone(p) for p in everyone), 5, f"workers {everyone} to end")
    finally:
        for p in everyone:
            if not _gone(p):
                os.kill(p, signal.SIGKILL)
    if sig == signal.SIGTERM:   # the sweep shut its pool down and released its lock on the way out
        assert rc == 128 + signal.SIGTERM, proc.stderr.read().decode()[-2000:]
        assert not (out / "sweep.lock").exists()
    listing = lambda: sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # noqa: E731
    before = listing()
    time.sleep(1.5)
    assert listing() == before   # nobody writes into the sweep folder any more


_ORPHAN = """
import os, subprocess, sys, time
flag = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", '''
import os, sys, time
from compress.study.executors import end_with_parent
end_with_parent(os.getppid(), deathsig=False)   # the watchdog alone: the fallback where prctl is missing
open(sys.argv[1], "w").close()
time.sleep(120)
''', flag])
while not os.path.exists(flag):
    time.sleep(0.05)
print(child.pid, flush=True)
os._exit(0)
"""


def test_the_watchdog_alone_ends_an_orphaned_worker(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN, str(tmp_path / "armed")], stdout=subprocess.PIPE,
                              text=True)
    child = int(parent.stdout.readline())
    parent.wait(timeout=60)
    try:
        _wait_for(lambda: _gone(child), 5, f"orphan {child} to end")
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_caller_that_stops_iterating_stops_the_workers():
    """Ctrl-C or an error in the sweep: the point in flight is abandoned at once, not trained to its end."""
    start = time.monotonic()
    results = ProcessExecutor(2, threads_per_job=1).run(time.sleep, [0, 300, 300])
    assert next(results) is None
    pool_children = _children(os.getpid())
    results.close()
    assert time.monotonic() - start < 60
    _wait_for(lambda: not [p for p in pool_children if not _gone(p) and b"spawn_main" in _cmdline(p)], 5,
              "the workers to end")
