"""compress.data.stream_folder and `compress train --stream`: an image folder read lazily, split as
compress.data.load splits it, trained batch by batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

from compress.cli import main
from compress.data import DataError, load, stream_folder


def _folder(root, classes=("a", "b", "c"), per_class=20, size=(12, 12), mode="L", seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = size if mode == "L" else (*size, 3)
            pixels = rng.integers(0, 60, shape, dtype=np.uint8) + np.uint8(60 * k)   # learnable: brightness
            Image.fromarray(pixels, mode).save(root / name / f"{i:03d}.png")
    return root


def test_splits_match_the_in_memory_reader(tmp_path):
    root = _folder(tmp_path / "imgs")
    streamed, held = stream_folder(root), load(root)
    assert streamed.class_names == tuple(held.class_names)
    assert [len(s) for s in streamed.splits()] == [len(held.train), len(held.val), len(held.test)]
    assert (streamed.in_chans, streamed.image_hw) == (1, (12, 12))
    # the same images held out for test: decode the streamed test split and compare with the bundle's
    test = np.stack([np.asarray(streamed.test.dataset[i][0]) for i in range(len(streamed.test))])
    assert sorted(map(bytes, test)) == sorted(map(bytes, held.test.x.numpy()))


def test_split_folders_and_class_alignment(tmp_path):
    root = tmp_path / "imgs"
    _folder(root / "train", per_class=6)
    _folder(root / "val", classes=("b", "c"), per_class=2, seed=1)   # class a missing: still numbered by train's
    data = stream_folder(root, input_size=8, in_chans=3)
    assert [s.name for s in data.splits()] == ["train", "val", "test"]
    assert len(data.val) == 4 and {data.val.dataset[i][1] for i in range(4)} == {1, 2}
    assert tuple(data.train.first()[0].shape) == (3, 8, 8)
    _folder(root / "test", classes=("z",), per_class=1)
    with pytest.raises(DataError, match="class folders z are not among the training classes"):
        stream_folder(root)


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        stream_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        stream_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="val_fraction must be in"):
        stream_folder(_folder(tmp_path / "imgs"), val_fraction=1.5)


def test_compress_train_stream(tmp_path, capsys):
    root = _folder(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(["train", "--model", "cnn", "--width", "0.25", "--data", str(root), "--stream", "--epochs", "2",
                 "--batch-size", "16", "--no-augment", "--threads", "1", "--quiet", "--workers", "1", "--out", str(out)]) == 0
    assert "(streamed)" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["source"] == f"<image folder {root.resolve()}, streamed>"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["val_acc"] is not None and metrics["test_acc"] is not None
    assert (out / "curves.png").exists()
    from compress.train import load_run

    with pytest.raises(ValueError, match="streamed; it is not read into memory again"):
        load_run(out).data()


def test_compress_train_stream_refuses_what_it_cannot_stream(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "cnn", "--data", "default", "--stream", "--out", str(out)]) == 2
    assert "--stream reads an image folder" in capsys.readouterr().err
    root = _folder(tmp_path / "imgs")
    assert main(["train", "--model", "cnn", "--data", str(root), "--stream", "--skip-bad-rows", "--out", str(out)]) == 2
    assert "--skip-bad-rows" in capsys.readouterr().err and not out.exists()
