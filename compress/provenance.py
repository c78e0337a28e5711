"""Where a result came from: the data's location and content hash, the code's version and revision, the command
line and the versions of the packages used. One record, written by run folders (``config.json["provenance"]``),
artifacts (``manifest["meta"]["provenance"]``) and sweeps (``sweep.json["provenance"]``).

A data file's hash is sha256 over its bytes, streamed; a folder's is sha256 over its files in sorted order (every
regular file below it whose path has no part starting with ``.``), each contributing its path relative to the
folder (POSIX), a NUL byte and its own sha256 digest. Hashes are cached in memory by ``(path, size, mtime)``, so
the runs of a sweep hash their data once per process. Nothing here imports torch or any other heavy package, and
nothing here raises for a missing git, package or file: what cannot be known is None.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["content_hash", "code_record", "packages", "provenance", "PACKAGES", "COMPACT_PACKAGES"]

# Distributions whose versions a record lists when installed (read with importlib.metadata: nothing is imported).
PACKAGES = ("torch", "numpy", "pillow", "onnx", "onnxruntime", "onnxscript", "matplotlib", "scipy", "mlxtend",
            "ultralytics-thop", "fvcore", "torchvision", "timm", "ray", "openvino")
_CHUNK_BYTES = 1 << 20
_HASHES: dict[tuple[str, int, int], str] = {}     # (absolute path, size, mtime_ns) -> sha256 hex of one file


def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    key = (path, size, mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _folder_files(root: Path) -> list[tuple[str, os.stat_result]]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                full = os.path.join(folder, name)
                st = os.stat(full)
                if os.path.isfile(full):
                    out.append((Path(os.path.relpath(full, root)).as_posix(), st))
    return sorted(out)


def content_hash(path: str | os.PathLike) -> dict:
    """``{"path", "sha256", "bytes", "files"}`` of a data file or folder (module docstring: what is hashed);
    ``path`` absolute. Raises FileNotFoundError when ``path`` does not exist."""
    p = Path(os.path.abspath(path))
    if p.is_dir():
        digest, total, files = hashlib.sha256(), 0, _folder_files(p)
        for rel, st in files:
            digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
            digest.update(bytes.fromhex(_file_sha256(str(p / rel), st.st_size, st.st_mtime_ns)))
            total += st.st_size
        return {"path": str(p), "sha256": digest.hexdigest(), "bytes": total, "files": len(files)}
    st = os.stat(p)   # FileNotFoundError names the path
    return {"path": str(p), "sha256": _file_sha256(str(p), st.st_size, st.st_mtime_ns), "bytes": st.st_size,
            "files": 1}


@lru_cache(maxsize=1)
def packages() -> dict[str, str]:
    """``{distribution: version}`` of the :data:`PACKAGES` installed here (none imported)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:   # a broken dist-info must not stop a run from being written
            continue
    return found


@lru_cache(maxsize=1)
def _revision() -> tuple[str | None, bool | None]:
    """``(git commit, dirty)`` of the checkout holding the compress package, or ``(None, None)`` when it is not
    a git checkout or git cannot say (no git, a timeout, anything)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                 "compress"], capture_output=True, text=True, timeout=10, check=True).stdout
    except Exception:
        return None, None
    return (head or None), bool(status.strip())


def code_record() -> dict:
    """The code and the command: compress's version, its git revision (``revision``: None outside a git checkout;
    ``dirty``: whether tracked files under ``compress/`` differ from it), ``argv``, ``cwd``, Python's version and
    :func:`packages`."""
    version: str | None
    try:
        from compress import __version__ as version
    except Exception:
        version = None
    revision, dirty = _revision()
    try:
        cwd = os.getcwd()
    except OSError:   # the folder the command started in was removed
        cwd = None
    return {"compress": version, "revision": revision, "dirty": dirty, "argv": list(sys.argv), "cwd": cwd,
            "python": sys.version.split()[0], "packages": dict(packages())}


COMPACT_PACKAGES = ("torch", "numpy", "onnxruntime")


def provenance(data: dict | None = None, *, compact: bool = False) -> dict:
    """:func:`code_record` plus ``"data"``: ``data`` as given (``DataBundle.origin``: ``{"source", "test_data":
    content_hash records or None, "test_split"}``), or None. ``compact`` (artifacts, whose bytes budgets count):
    no ``cwd`` or ``python``, only :data:`COMPACT_PACKAGES`, and of each data record its ``path`` and ``sha256``."""
    record = {**code_record(), "data": data}
    if not compact:
        return record
    for key in ("cwd", "python"):
        record.pop(key)
    record["packages"] = {k: v for k, v in record["packages"].items() if k in COMPACT_PACKAGES}
    if isinstance(data, dict):
        record["data"] = {k: ({f: v.get(f) for f in ("path", "sha256")} if isinstance(v, dict) else v)
                          for k, v in data.items()}
    return record
