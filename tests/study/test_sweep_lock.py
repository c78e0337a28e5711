"""compress.study.lock: one sweep at a time in a sweep folder; a dead owner's lock is taken over (issue 16, 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from compress._io import HOST
from compress.cli import main
from compress.study.lock import LOCK_NAME, FolderLocked, folder_lock

_HOLD = """
import sys, time
from compress.study.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/sweep."""
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_is_created_and_removed(tmp_path):
    with folder_lock(tmp_path / "s") as path:
        owner = json.loads(path.read_text())
        assert path.name == LOCK_NAME and owner["pid"] == os.getpid() and owner["host"] == HOST
    assert not path.exists()


def test_a_live_owner_refuses_a_second_sweep_before_any_work(holder, capsys):
    out, proc = holder
    status = main(["sweep", "--data", "synthetic:n=120,classes=3,size=12", "--families", "mlp", "--budgets", "5k",
                   "--seeds", "1", "--epochs", "1", "--no-latency", "--out", str(out)])
    assert status == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("compress sweep: error:") and str(out) in line and str(proc.pid) in line
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]   # nothing trained, nothing written
    with pytest.raises(FolderLocked, match=str(proc.pid)):
        with folder_lock(out):
            pass


def test_a_dead_owners_lock_is_taken_over(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": HOST, "started": time.time()}))
    with folder_lock(out) as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists() and [p.name for p in out.iterdir()] == []


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "started": time.time()}))
    with pytest.raises(FolderLocked, match="another host.*remove"):
        with folder_lock(out):
            pass
    assert (out / LOCK_NAME).exists()


def test_an_empty_lock_is_live_while_young_and_stale_when_old(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    lock = out / LOCK_NAME
    lock.write_text("")
    with pytest.raises(FolderLocked, match="starting"):
        with folder_lock(out):
            pass
    old = time.time() - 60
    os.utime(lock, (old, old))
    with folder_lock(out):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_the_lock_is_released_when_the_sweep_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path):
            raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
