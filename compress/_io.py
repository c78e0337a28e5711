"""Atomic file writes: write to a temporary file beside the target, then rename into place.

A reader never sees a half-written file, and a crash leaves the old file (or none) behind. Every file compress
writes goes through here: bytes, text, JSON and CSV.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json", "write_csv", "check_output", "check_output_folder",
           "pid_alive", "HOST", "staging_folder", "clean_stale_staging"]

HOST = socket.gethostname()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    The temporary file keeps the target's suffix so libraries that look at the suffix
    (``np.savez`` appends ``.npz`` otherwise) write to exactly the yielded path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())   # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (), overwrite: bool = False,
                 what: str = "--out") -> Path:
    """Check an output file path before any work: not one of ``inputs`` (never, even with ``overwrite``), not
    an existing folder, not an existing file unless ``overwrite``, and in a folder that can be written.
    Raises ValueError (or FileExistsError) naming ``what`` and the path; returns the path."""
    out = Path(out)
    target = out.resolve()
    for given in inputs:
        src = Path(given)
        if src.exists() and (target == src.resolve() or (out.exists() and os.path.samefile(out, src))):
            raise ValueError(f"{what} {str(out)!r} is an input of this command ({str(src)!r}); "
                             f"it would be overwritten. Choose another path")
    if out.is_dir():
        raise ValueError(f"{what} {str(out)!r} is a folder; give a file path")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{what} {str(out)!r} exists; pass --overwrite to replace it")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(out)!r}: folder {str(folder)!r} is not writable")
    return out


def check_output_folder(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                        overwrite: bool | None = None, what: str = "--out") -> Path:
    """Check an output folder before any work: not a file, not one of ``inputs`` (never, even with
    ``overwrite``), in a folder that can be written. ``overwrite``: None, an existing folder is written into (a
    resumed sweep, a regenerated report); False, an existing folder is refused; True, it will be replaced, so it
    must not hold an input either. Raises ValueError (or FileExistsError) naming ``what`` and the path; returns
    the path."""
    out = Path(out)
    target = out.resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"{what} {str(out)!r} is a file; give a folder")
    for given in inputs:
        src = Path(given)
        if src.exists() and (src.resolve() == target or (overwrite is not None and target in src.resolve().parents)):
            raise ValueError(f"{what} {str(out)!r} is or holds an input of this command ({str(src)!r}); "
                             f"it could be overwritten. Choose another folder")
    if out.exists() and overwrite is False:
        raise FileExistsError(f"{what} {str(out)!r} exists; pass --overwrite to replace it")
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(out)!r}: folder {str(folder)!r} is not writable")
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a process of another user counts as alive). Anything that
    cannot be a PID (not an int, <= 0, beyond pid_t's range: read from a hostile file) is not alive."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_folder(out: Path) -> Path:
    """The hidden folder a folder ``out`` is assembled in before it is renamed into place: ``.OUT.partial-PID``."""
    return out.parent / f".{out.name}.partial-{os.getpid()}"


_STAGE = re.compile(r"^\.(?P<name>.+)\.partial-(?:ray-)?(?P<pid>\d+)$")


def clean_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders (``.NAME.partial-PID``, ``.NAME.partial-ray-PID``) in ``folder`` whose process
    is dead: what a kill during a folder's final write leaves. Staging folders of live processes are kept.
    Returns the removed paths."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _STAGE.match(p.name)
        if m and p.is_dir() and not p.is_symlink() and not pid_alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """A CSV table with a header of ``columns``: one line per row (keys beyond ``columns`` ignored, missing and
    None cells empty); cells holding commas, quotes or newlines are quoted."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
