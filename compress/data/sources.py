"""Where data come from: ``load(source)`` for every source (listed in :mod:`compress.data`), ``from_arrays`` for
in-memory arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from compress.data.bundle import DataBundle, _as_hw, _bundle, stratified_split
from compress.data.default import DIGIT_CLASSES, default_file, load_default
from compress.data.readers import MAX_IMAGE_PIXELS, align, check_arrays, read_source
from compress.provenance import content_hash
from compress.data.synthetic import parse_synthetic, synthetic

__all__ = ["load", "from_arrays", "TEST_SPLITS"]


def load(source: str | os.PathLike, *, val_fraction: float = 0.1, seed: int = 0,
         input_size: int | tuple[int, int] | None = None, skip_bad_rows: bool = False,
         test: str | os.PathLike | None = None, test_fraction: float = 0.1, test_seed: int = 0) -> DataBundle:
    """Load ``source`` (see the module docstring) into a :class:`DataBundle`.

    The test split, in order of precedence: ``test`` (a data file or folder, read as ``source`` is: its own test
    split if it has one, else all its images; its classes must be among the training data's and its images of
    the same size and channels, or a DataError names both), the source's own (the default digits' fixed 1,000, an
    npz's ``x_test``, a CSV's ``PrivateTest`` rows, a folder's ``test/``), else ``test_fraction`` of each class's
    training rows held out (stratified, seeded by ``test_seed``, not by ``seed``: every seed of a study is tested
    on the same images; 0: no test split). ``val_fraction``: share of each class's remaining training rows held
    out for validation (stratified, seeded by ``seed``), unless the source has its own validation split.
    ``input_size``: output side length (or ``(H, W)``); images of another size are resized (bilinear); for CSVs
    it also sets the grid when the pixel count is not a square; at most 4096x4096 pixels
    (``readers.MAX_IMAGE_PIXELS``, the limit on images read). ``bundle.options`` holds what ``load`` reloads it
    with (paths absolute), ``bundle.origin`` where the images came from (content hashes, how the test split was
    made: :data:`TEST_SPLITS`).
    Raises ``FileNotFoundError``, :class:`DataError` (a ``ValueError``) on bad data.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    size = _as_hw(input_size)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(f"input_size {size[0]}x{size[1]} exceeds the limit of {MAX_IMAGE_PIXELS} pixels (4096x4096) "
                         f"per image")
    text = str(source)
    test_path = _existing(test, "test data") if test is not None else None
    options = {"val_fraction": val_fraction, "seed": seed, "input_size": list(size) if size else None,
               "skip_bad_rows": skip_bad_rows, "test": str(test_path) if test_path else None,
               "test_fraction": test_fraction, "test_seed": test_seed}
    if text == "default":
        parts, classes, skipped, flip_ok = load_default(seed, val_fraction), DIGIT_CLASSES, [], False
        where, files = text, default_file()
    elif text == "synthetic" or text.startswith("synthetic:"):
        if test is not None:
            raise ValueError(f"{text}: a synthetic source makes its own test split; test data cannot replace it")
        return synthetic(**parse_synthetic(text), val_fraction=val_fraction, input_size=input_size)
    else:
        files = _existing(source, "data source")
        where, flip_ok = str(files), True
        parts, classes, skipped = read_source(files, size, skip_bad_rows)
    how = "source" if "test" in parts else None
    if test_path is not None:
        parts["test"], parts["ids"], more = _test_part(test_path, parts, classes, size, skip_bad_rows, where)
        skipped, how = skipped + more, "test_data"
    if "train" in parts:
        x, y = parts["train"]
        if how is None and test_fraction > 0:
            rest, held = stratified_split(y, test_fraction, test_seed)
            parts["test"], (x, y), how = (x[held], y[held]), (x[rest], y[rest]), "held_out"
            parts["train"] = (x, y)
        if "val" not in parts:
            tr, va = stratified_split(y, val_fraction, seed)
            parts["train"], parts["val"] = (x[tr], y[tr]), (x[va], y[va])
    if parts.get("ids") is None:
        parts.pop("ids", None)
    bundle = _bundle(parts, classes, where, options, skipped, size, flip_ok)
    bundle.origin = {"source": content_hash(files), "test_data": content_hash(test_path) if test_path else None,
                     "test_split": how}
    return bundle


TEST_SPLITS = {"source": "the source's own test split", "test_data": "the test data file given",
               "held_out": "held out of the training rows (test_fraction per class, test_seed)", None: "none"}


def _existing(source: str | os.PathLike, what: str) -> Path:
    """``source`` as an absolute path (``os.path.abspath``: symlinks kept), or FileNotFoundError naming it."""
    path = Path(os.path.abspath(source))
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(source)!r}: no such file or folder "
                                "(give a CSV, .npz, image folder" + (", 'default' or 'synthetic')"
                                                                   if what == "data source" else ")"))
    return path


def _test_part(path: Path, parts: dict, classes, size, skip: bool, where: str):
    """The test split read from ``path`` (its own test split, else all its images), matched to the training data
    (:func:`readers.align`): ``((x, y), ids or None, skipped)``."""
    tparts, tclasses, skipped = read_source(path, size, skip)
    ids = tparts.pop("ids", None)
    if "test" in tparts:
        x, y = tparts["test"]
    else:
        ids = None
        x = np.concatenate([tparts[n][0] for n in ("train", "val") if n in tparts])
        y = np.concatenate([tparts[n][1] for n in ("train", "val") if n in tparts])
    ref = next(parts[n][0] for n in ("train", "val", "test") if n in parts)
    x, y = align(x, y, tclasses, ref, classes, size, f"test data {path}", where)
    return (x, y), ids, skipped


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
    bundle = _bundle(parts, classes, source, options, [], None, flip_invariant)
    bundle.origin = {"source": None, "test_data": None, "test_split": "source" if x_test is not None else None}
    return bundle

