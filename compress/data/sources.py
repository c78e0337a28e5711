"""Where data come from: ``load(source)`` for every source (listed in :mod:`compress.data`), ``from_arrays`` for
in-memory arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from compress.data.bundle import DataBundle, _as_hw, _bundle, stratified_split
from compress.data.default import DIGIT_CLASSES, load_default
from compress.data.readers import MAX_IMAGE_PIXELS, check_arrays, read_csv, read_folder, read_npz
from compress.data.synthetic import parse_synthetic, synthetic

__all__ = ["load", "from_arrays"]


def load(source: str | os.PathLike, *, val_fraction: float = 0.1, seed: int = 0,
         input_size: int | tuple[int, int] | None = None, skip_bad_rows: bool = False) -> DataBundle:
    """Load ``source`` (see the module docstring) into a :class:`DataBundle`.

    ``val_fraction``: share of each class's training rows held out for validation (stratified, seeded by
    ``seed``). ``input_size``: output side length (or ``(H, W)``); images of another size are resized
    (bilinear); for CSVs it also sets the grid when the pixel count is not a square; at most 4096x4096 pixels
    (``readers.MAX_IMAGE_PIXELS``, the limit on images read).
    Raises ``FileNotFoundError``, :class:`DataError` (a ``ValueError``) on bad data.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    size = _as_hw(input_size)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"input_size {size[0]}x{size[1]} exceeds the limit of {MAX_IMAGE_PIXELS} pixels (4096x4096) "
                         f"per image")
    options = {"val_fraction": val_fraction, "seed": seed,
               "input_size": list(size) if size else None, "skip_bad_rows": skip_bad_rows}
    text = str(source)
    if text == "default":
        parts, classes, skipped, flip_ok = load_default(seed, val_fraction), DIGIT_CLASSES, [], False
    elif text == "synthetic" or text.startswith("synthetic:"):
        return synthetic(**parse_synthetic(text), val_fraction=val_fraction, input_size=input_size)
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"data source {text!r}: no such file or folder "
                                    "(give a CSV, .npz, image folder, 'default' or 'synthetic')")
        flip_ok = True
        if path.is_dir():
            x, y, classes, skipped = read_folder(path, size, skip_bad_rows)
            parts = {"train": (x, y)}
        elif path.suffix == ".npz":
            parts, classes, skipped = read_npz(path, skip_bad_rows)
        else:
            parts, classes, skipped = read_csv(path, size, skip_bad_rows)
        if "val" not in parts and "train" in parts:
            x, y = parts["train"]
            tr, va = stratified_split(y, val_fraction, seed)
            parts["train"], parts["val"] = (x[tr], y[tr]), (x[va], y[va])
    return _bundle(parts, classes, text, options, skipped, size, flip_ok)


def from_arrays(x, y, *, class_names: Sequence[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                x_test=None, y_test=None, source: str = "arrays", flip_invariant: bool = True) -> DataBundle:
    """A bundle from in-memory arrays (same layouts as ``.npz``); a run trained on it cannot reload its data."""
    x, y = check_arrays(np.asarray(x), np.asarray(y), "x", "y", source)
    tr, va = stratified_split(y, val_fraction, seed)
    parts = {"train": (x[tr], y[tr]), "val": (x[va], y[va])}
    if x_test is not None:
        parts["test"] = check_arrays(np.asarray(x_test), np.asarray(y_test), "x_test", "y_test", source)
    k = int(max(p[1].max() for p in parts.values() if len(p[1]))) + 1
    classes = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))
    options = {"val_fraction": val_fraction, "seed": seed, "input_size": None, "skip_bad_rows": False}
    return _bundle(parts, classes, source, options, [], None, flip_invariant)

