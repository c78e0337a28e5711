"""Declared sizes in data files bounded before use (issue 27, N6, N7): an npz's class names and image sizes, and
the size images are resized to."""

from __future__ import annotations

import numpy as np
import pytest

from compress.data import DataError, from_arrays, load
from compress.data.readers import MAX_CHANNELS, MAX_CLASSES


def test_class_names_are_bounded_like_labels(tmp_path):
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1])
    path = tmp_path / "names.npz"
    np.savez(path, x=x, y=y, class_names=np.array(["a"] * (MAX_CLASSES + 1)))
    with pytest.raises(DataError, match=f"class_names must be a 1-D array of 1 to {MAX_CLASSES} names"):
        load(path)
    np.savez(path, x=x, y=y, class_names=np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(DataError, match=r"class_names .* shape \(2, 2\)"):
        load(path)
    np.savez(path, x=x, y=y, class_names=np.array(["cat", "dog"]))
    assert load(path).class_names == ("cat", "dog")


@pytest.mark.parametrize("shape,words", [((2, 4097, 4096), "4097x4096 with 1 channels"),
                                         ((1, MAX_CHANNELS + 1, 8, 8), f"{MAX_CHANNELS + 1} channels")])
def test_npz_images_are_bounded_as_folder_images(tmp_path, shape, words):
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros(shape, np.uint8), y=np.zeros(shape[0], np.int64))
    with pytest.raises(DataError, match=words):
        load(path)
    with pytest.raises(DataError, match="limit is 16777216 pixels"):
        from_arrays(np.zeros(shape, np.uint8), np.zeros(shape[0], np.int64))


def test_input_size_is_bounded():
    with pytest.raises(ValueError, match="input_size 5000x5000 exceeds the limit"):
        load("default", input_size=5000)
