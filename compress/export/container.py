"""An artifact's zip container read with bounded memory and no code execution.

Before a byte is inflated, the sizes the zip declares are checked:
- all members together may declare at most ``max(INFLATE_FLOOR_BYTES, INFLATE_RATIO_MAX x file size)``
  uncompressed bytes (real weights deflate by 1-2x; a bomb of zeros by ~1000x);
- ``.npz``: the manifest member is read first (at most ``MANIFEST_MAX_BYTES``); then each array member's npy
  header must declare exactly the dtype and count the manifest declares, and its declared zip size must be that
  many bytes plus the header, before the array is read (``zipfile`` never inflates past a declared size);
- ``.pt``: members must be stored, not compressed (``torch.save`` never compresses), so the file's size bounds
  every record; then ``torch.load(weights_only=True)`` runs, and each entry must be a 1-D contiguous tensor.
Every zip, zlib or format error becomes :class:`~compress.export.manifest.ArtifactError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from compress.export.manifest import MANIFEST_MAX_BYTES, ArtifactError, parse_manifest

__all__ = ["INFLATE_FLOOR_BYTES", "INFLATE_RATIO_MAX", "read_container", "zip_infos"]

INFLATE_FLOOR_BYTES = 64 * 2**20   # members may always declare this many bytes in all, whatever the ratio
INFLATE_RATIO_MAX = 64             # else at most this x the file's size (deflate reaches ~1032x on zeros)
_NPY_HEADER_MAX_BYTES = 65536 + 16
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, zlib.error,
               ValueError, KeyError, RuntimeError, OverflowError, UnicodeDecodeError)


def zip_infos(path: Path) -> list[zipfile.ZipInfo]:
    """The members of ``path`` after the size checks above. Raises ArtifactError."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except ArtifactError:
        raise
    except _ZIP_ERRORS as exc:
        raise ArtifactError(f"{path}: damaged zip container ({type(exc).__name__}: {exc})") from None
    declared = sum(i.file_size for i in infos)
    limit = max(INFLATE_FLOOR_BYTES, INFLATE_RATIO_MAX * os.path.getsize(path))
    if declared > limit:
        raise ArtifactError(f"{path}: zip members declare {declared} bytes uncompressed from a "
                            f"{os.path.getsize(path)}-byte file (limit {limit}); refused as a decompression bomb")
    if len({i.filename for i in infos}) != len(infos):
        raise ArtifactError(f"{path}: zip container repeats a member name")
    return infos


def read_container(path: Path) -> tuple[str, dict, Mapping[str, np.ndarray | torch.Tensor], int]:
    """``(container, manifest, arrays, manifest length in bytes)``; raises ArtifactError for any bad file."""
    try:
        is_zip = zipfile.is_zipfile(path)
    except _ZIP_ERRORS:   # is_zipfile itself raises BadZipFile for some damaged end records
        is_zip = False
    if not is_zip:
        raise ArtifactError(f"{path}: not a compress artifact (not an .npz or .pt zip container, or truncated)")
    infos = zip_infos(path)
    names = [i.filename for i in infos]
    try:
        if any(n.endswith("data.pkl") for n in names):
            return ("pt", *_read_pt(path, infos))
        if names and all(n.endswith(".npy") for n in names):
            return ("npz", *_read_npz(path))
    except ArtifactError:
        raise
    except _ZIP_ERRORS as exc:
        raise ArtifactError(f"{path}: damaged container ({type(exc).__name__}: {str(exc)[:200]})") from None
    raise ArtifactError(f"{path}: a zip file, but neither an .npz nor a torch.save file")


def _read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray], int]:
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            _refuse_objects(path, zf, name)
        if "manifest.npy" not in zf.namelist():
            raise ArtifactError(f"{path}: .npz without a manifest, not a compress artifact")
        raw = _read_member(path, zf, "manifest", "uint8", None).tobytes()
        manifest = parse_manifest(path, raw)
        declared = manifest["arrays"]
        keys = [n[:-len(".npy")] for n in zf.namelist() if n != "manifest.npy"]
        if set(keys) != set(declared):
            raise ArtifactError(f"{path}: arrays {sorted(keys)[:10]} differ from the manifest's "
                                f"{sorted(declared)[:10]}")
        arrays = {k: _read_member(path, zf, k, declared[k]["dtype"], declared[k]["count"]) for k in keys}
    return manifest, arrays, len(raw)


def _header(path: Path, f, key: str) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ArtifactError(f"{path}: array {key!r} has npy format version {version}")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return reader(f, max_header_size=_NPY_HEADER_MAX_BYTES)


def _refuse_objects(path: Path, zf: zipfile.ZipFile, name: str) -> None:
    """Refuse pickled (object) arrays from their header alone: pickle never runs."""
    with zf.open(name) as f:
        _, _, dt = _header(path, f, name)
    if dt.hasobject:
        raise ArtifactError(f"{path}: refused to load {name!r}, an array of pickled Python objects; artifacts "
                            f"hold plain arrays only")


def _read_member(path: Path, zf: zipfile.ZipFile, key: str, dtype: str, count: int | None) -> np.ndarray:
    """One 1-D npy member; its header and declared size must agree with ``dtype`` and ``count`` (None: the
    manifest, capped at MANIFEST_MAX_BYTES) before its data is read."""
    info = zf.getinfo(f"{key}.npy")
    with zf.open(info) as f:
        shape, fortran, dt = _header(path, f, key)
        want = np.dtype(dtype)
        if dt != want or fortran or len(shape) != 1 or (count is not None and shape[0] != count):
            raise ArtifactError(f"{path}: array {key!r} is {dt} {shape}, the manifest says {dtype} ({count},)")
        if count is None and shape[0] > MANIFEST_MAX_BYTES:
            raise ArtifactError(f"{path}: manifest of {shape[0]} bytes exceeds the {MANIFEST_MAX_BYTES}-byte limit")
        nbytes = shape[0] * want.itemsize
        if info.file_size != f.tell() + nbytes:
            raise ArtifactError(f"{path}: zip member {info.filename!r} declares {info.file_size} bytes, its npy "
                                f"header {f.tell() + nbytes}")
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ArtifactError(f"{path}: array {key!r} is truncated")
    return np.frombuffer(data, dtype=want)


def _read_pt(path: Path, infos: list[zipfile.ZipInfo]) -> tuple[dict, dict[str, torch.Tensor], int]:
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
        raise ArtifactError(f"{path}: .pt container with compressed members (torch.save stores them); refused")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for arbitrary objects, RuntimeError if damaged
        raise ArtifactError(f"{path}: refused or failed to load with torch.load(weights_only=True) "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("manifest"), str):
        raise ArtifactError(f"{path}: .pt file is not a compress artifact (no manifest string)")
    arrays = {k: v for k, v in obj.items() if k != "manifest"}
    bad = [k for k, v in arrays.items() if not (isinstance(v, torch.Tensor) and v.ndim == 1 and v.is_contiguous())]
    if bad:
        raise ArtifactError(f"{path}: entries {[str(k)[:40] for k in bad[:3]]} are not 1-D contiguous tensors")
    raw = obj["manifest"].encode("utf-8", "surrogatepass")
    return parse_manifest(path, raw), arrays, len(raw)
