"""``.npz`` files read with bounded memory: sizes are checked before anything is inflated or allocated.

``np.load`` allocates what each member's npy header declares and inflates what the zip declares; a few bytes can
declare gigabytes. :func:`load_npz` first checks that all members together declare at most
``max(INFLATE_FLOOR_BYTES, INFLATE_RATIO_MAX x the file's size)`` uncompressed bytes, then that each member's npy
header agrees with its declared zip size, and refuses pickled (object) arrays. Raises ValueError naming the file.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = ["INFLATE_FLOOR_BYTES", "INFLATE_RATIO_MAX", "load_npz"]

INFLATE_FLOOR_BYTES = 64 * 2**20   # members may always declare this many bytes in all, whatever the ratio
INFLATE_RATIO_MAX = 64             # else at most this x the file's size (deflate reaches ~1032x on zeros)
_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, zlib.error, ValueError,
           KeyError, RuntimeError, OverflowError, UnicodeDecodeError)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, each checked as above. Raises ValueError naming ``path``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            limit = max(INFLATE_FLOOR_BYTES, INFLATE_RATIO_MAX * os.path.getsize(path))
            if declared > limit:
                raise _Refused(f"its members declare {declared} bytes uncompressed from a "
                               f"{os.path.getsize(path)}-byte file (limit {limit}); refused as a decompression bomb")
            return {i.filename.removesuffix(".npy"): _member(zf, i) for i in infos}
    except _Refused as exc:
        raise ValueError(f"{path}: {exc}") from None
    except _ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npz file ({type(exc).__name__}: {str(exc)[:200]})") from None


class _Refused(Exception):
    pass


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise _Refused(f"{info.filename}: npy format version {version}")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f, max_header_size=65536)
        if dtype.hasobject:
            raise _Refused(f"{info.filename} holds pickled Python objects; only plain arrays are read")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size != f.tell() + nbytes:
            raise _Refused(f"{info.filename}: its npy header declares {nbytes} bytes of data, the zip "
                           f"{info.file_size - f.tell()}")
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise _Refused(f"{info.filename} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
