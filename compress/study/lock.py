"""A folder lock: one sweep at a time in a sweep folder.

``with folder_lock(out): ...`` creates ``out/sweep.lock`` atomically (``O_CREAT | O_EXCL``) holding the owner's
PID, host and start time, and removes it on exit. A second sweep into the same folder finds the file and stops
with :class:`FolderLocked` naming the folder, the host and the PID, before it trains anything. A lock left by a
process that died (killed, power loss) is taken over when its PID is no longer alive on this host; a lock from
another host is never taken over (its PID cannot be checked from here): the message says which file to remove.
A PID that is alive again but belongs to a process started after the lock was written (the PID was reused, as
after a reboot or in a restarted container; read from ``/proc`` where there is one) is stale too. A live PID
whose command line does not look like a sweep is not taken over (it may be a sweep run from a script), but the
message says the lock may be stale and gives the command that clears it. A lock file whose owner is not a
valid PID, host and start time (edited, or not written by compress) is refused with that command as well.

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
_PID_MAX = 2**31 - 1        # pid_t is a 32-bit int (Linux allows at most 2**22)
_REUSE_SLACK_S = 5.0        # a process started this long after the lock was written cannot be its owner


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
        problem = _invalid(owner)
        if problem:
            raise FolderLocked(f"sweep folder {str(path.parent)!r}: lock file {str(path)!r} {problem}, so it is not "
                               f"a lock compress wrote; if no sweep runs in this folder, remove it: "
                               f"rm {_quote(path)}")
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


def _invalid(text: str) -> str | None:
    """What is wrong with a lock file that parses as a JSON object but holds no valid owner; None if nothing
    is (an empty or garbled file is a lock being written: :func:`_stale` waits for it)."""
    owner = _owner(text)
    if not owner:
        return None
    pid, host, started = owner.get("pid"), owner.get("host"), owner.get("started")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _PID_MAX:
        return f"holds no valid PID ({_short(pid)})"
    if not isinstance(host, str) or not host:
        return f"holds no valid host ({_short(host)})"
    if started is not None and (isinstance(started, bool) or not isinstance(started, (int, float))
                                or not 0 <= started < 1e11):
        return f"holds no valid start time ({_short(started)})"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _stale(path: Path, text: str) -> bool:
    owner = _owner(text)
    if not owner:   # empty or garbled: a lock being written right now, or one whose writer died at once
        try:
            return time.time() - path.stat().st_mtime > _UNWRITTEN_GRACE_S
        except FileNotFoundError:
            return True
    pid = owner["pid"]
    if owner["host"] != HOST:
        return False
    if not pid_alive(pid):
        return True
    state, started = _process_state(pid)
    if state == "Z":   # killed, not yet reaped by its parent: dead
        return True
    # alive: the owner, unless the PID was reused by a process that started after the lock was written
    return (started is not None and isinstance(owner.get("started"), (int, float))
            and started > owner["started"] + _REUSE_SLACK_S)


def _process_state(pid: int) -> tuple[str | None, float | None]:
    """Process ``pid``'s state letter (``"Z"``: a zombie) and when it started (seconds since the epoch), from
    ``/proc``; None for what cannot be read."""
    try:
        fields = (stat := Path(f"/proc/{pid}/stat").read_text())[stat.rindex(")") + 2:].split()
    except (OSError, ValueError):
        return None, None
    try:   # fields[0]: field 3 (state); fields[19]: field 22 (starttime, clock ticks after boot)
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return (fields[0] if fields else None), None


def _command(pid: int) -> str | None:
    """Process ``pid``'s command line, from ``/proc``; None where it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


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
    if owner and owner.get("host") != HOST:
        hint = f"; it runs on another host: if it is gone, remove the lock: rm {_quote(path)}"
    elif owner and not _looks_like_sweep(_command(owner["pid"])):
        return (f"sweep folder {str(path.parent)!r}: lock {str(path)!r} names {who}{since}, which runs "
                f"{_short(_command(owner['pid']))} and does not look like a compress sweep: the lock may be stale "
                f"(its PID reused); if no sweep runs in this folder, remove it: rm {_quote(path)}")
    else:
        hint = ""
    return (f"sweep folder {str(path.parent)!r} is in use by {who}{since} (lock {str(path)!r}); wait for it to "
            f"finish or use another --out{hint}")


def _looks_like_sweep(command: str | None) -> bool:
    """Whether a command line may be a sweep's: compress's CLI, or Python (a script calling run_sweep); True when
    it cannot be read."""
    return command is None or "compress" in command or "python" in command.lower()
