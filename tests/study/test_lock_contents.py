"""A sweep.lock's contents are checked (issue 27, N18): a PID that cannot be one is refused in one line with the
command that clears it (no OverflowError); a live PID of a process started after the lock (a reused PID) or a
zombie is stale; a live PID that is not a sweep's is refused with "may be stale" and the rm command."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compress._io import HOST, clean_stale_staging, pid_alive
from compress.cli import main
from compress.study.lock import LOCK_NAME, FolderLocked, folder_lock

SWEEP = ["sweep", "--data", "synthetic:n=120,classes=3,size=12", "--families", "mlp", "--budgets", "5k",
         "--seeds", "1", "--epochs", "1", "--no-latency"]
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process start times from /proc")


def _lock(out: Path, **owner) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    path.write_text(json.dumps({"pid": 1, "host": HOST, "started": time.time(), **owner}))
    return path


@pytest.fixture
def sleeper():
    """A live process that is not a sweep (its command line: sleep 120)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("pid", [10**19 + 7, 2**31, -5, 0, "1234", True, 1.5, None, [1]])
def test_a_lock_without_a_valid_pid_is_refused_with_the_command_that_clears_it(tmp_path, capsys, pid):
    out = tmp_path / "s"
    path = _lock(out, pid=pid)
    text = path.read_text()
    with pytest.raises(FolderLocked, match="no valid PID") as info:
        with folder_lock(out):
            pass
    assert f"rm {shlex.quote(str(path))}" in str(info.value)
    assert main([*SWEEP, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "no valid PID" in err[0]
    assert path.read_text() == text and sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


@pytest.mark.parametrize("owner, match", [(dict(host=5), "no valid host"), (dict(host=""), "no valid host"),
                                          (dict(started="yesterday"), "no valid start time"),
                                          (dict(started=float("1e300")), "no valid start time")])
def test_other_invalid_owners(tmp_path, owner, match):
    _lock(tmp_path, **owner)
    with pytest.raises(FolderLocked, match=match):
        with folder_lock(tmp_path):
            pass


def test_pid_alive_and_staging_cleanup_take_any_number(tmp_path):
    assert not pid_alive(10**20) and not pid_alive(-1) and not pid_alive("1") and not pid_alive(True)
    stage = tmp_path / ".run.partial-99999999999999999999"
    stage.mkdir()
    assert clean_stale_staging(tmp_path) == [stage] and not stage.exists()


@needs_proc
def test_a_live_pid_that_is_not_a_sweep_may_be_stale(tmp_path, sleeper, capsys):
    time.sleep(0.1)
    path = _lock(tmp_path / "s", pid=sleeper.pid, started=time.time())   # written after the process started
    with pytest.raises(FolderLocked) as info:
        with folder_lock(tmp_path / "s"):
            pass
    message = str(info.value)
    assert "may be stale" in message and "sleep 120" in message and f"rm {shlex.quote(str(path))}" in message
    assert "wait for it" not in message and path.exists()


@needs_proc
def test_a_reused_pid_is_stale(tmp_path, sleeper):
    """The PID is alive, but its process started after the lock was written: not the owner."""
    _lock(tmp_path, pid=sleeper.pid, started=time.time() - 3600)
    with folder_lock(tmp_path) as path:
        assert json.loads(path.read_text())["pid"] != sleeper.pid


@needs_proc
def test_a_zombie_owner_is_stale(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _lock(tmp_path, pid=proc.pid, started=time.time())
        with folder_lock(tmp_path) as path:
            assert json.loads(path.read_text())["pid"] != proc.pid
    finally:
        proc.wait()


def test_a_live_python_owner_is_still_waited_for(tmp_path):
    """A sweep run from a script has no 'compress' in its command line: its lock is never taken over."""
    import os

    _lock(tmp_path, pid=os.getpid(), started=time.time())
    with pytest.raises(FolderLocked, match="wait for it to finish"):
        with folder_lock(tmp_path):
            pass
