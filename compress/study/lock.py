"""A folder lock: one sweep at a time in a sweep folder.

``with folder_lock(out): ...`` creates ``out/sweep.lock`` atomically (``O_CREAT | O_EXCL``) holding the owner's
PID, host and start time, and removes it on exit. A second sweep into the same folder finds the file and stops
with :class:`FolderLocked` naming the folder, the host and the PID, before it trains anything. A lock left by a
process that died (killed, power loss) is taken over when its PID is no longer alive on this host; a lock from
another host is never taken over (its PID cannot be checked from here): the message says which file to remove.

Taking over is a rename of the stale file to a private name, checked to be the stale one before it is deleted,
so two sweeps that find the same stale lock cannot both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

from compress._io import HOST, pid_alive

__all__ = ["LOCK_NAME", "FolderLocked", "folder_lock"]

LOCK_NAME = "sweep.lock"
_UNWRITTEN_GRACE_S = 10.0   # an empty lock file younger than this may be a lock being written: treated as live


class FolderLocked(ValueError):
    """The folder is locked by another live process (a ValueError: the CLI prints it as one line, exit 2)."""


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold ``folder/sweep.lock`` for the duration of the block; yields the lock file's path."""
    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    mine = json.dumps({"pid": os.getpid(), "host": HOST, "started": time.time()})
    for _ in range(10):
        if _create(path, mine):
            break
        owner = _read(path)
        if owner is None:            # vanished between our attempt and the read: try again
            continue
        if not _stale(path, owner):
            raise FolderLocked(_message(path, owner))
        _take_over(path, owner)
    else:
        raise FolderLocked(f"sweep folder {str(path.parent)!r}: could not take the lock {str(path)!r} "
                           f"(other processes keep taking it)")
    try:
        yield path
    finally:
        if _read(path) == mine:
            path.unlink(missing_ok=True)


def _create(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _owner(text: str) -> dict:
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _stale(path: Path, text: str) -> bool:
    owner = _owner(text)
    if not owner:   # empty or garbled: a lock being written right now, or one whose writer died at once
        try:
            return time.time() - path.stat().st_mtime > _UNWRITTEN_GRACE_S
        except FileNotFoundError:
            return True
    pid = owner.get("pid")
    return owner.get("host") == HOST and isinstance(pid, int) and not pid_alive(pid)


def _take_over(path: Path, stale: str) -> None:
    """Remove the stale lock ``path`` (whose content was ``stale``); if another process replaced it meanwhile,
    put that process's lock back."""
    grave = path.with_name(f"{path.name}.stale-{os.getpid()}")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return
    if _read(grave) != stale:        # not the stale lock any more: someone took it just before us
        with contextlib.suppress(FileExistsError):
            os.link(grave, path)
    grave.unlink(missing_ok=True)


def _message(path: Path, text: str) -> str:
    owner = _owner(text)
    who = (f"process {owner.get('pid')} on {owner.get('host')}" if owner else "a process that is starting")
    since = (f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(owner['started']))}"
             if isinstance(owner.get("started"), (int, float)) else "")
    remote = (f"; it runs on another host: if it is gone, remove {str(path)!r}"
              if owner and owner.get("host") != HOST else "")
    return (f"sweep folder {str(path.parent)!r} is in use by {who}{since} (lock {str(path)!r}); wait for it to "
            f"finish or use another --out{remote}")
