"""A test split for every data source (issue 25): a test file (``test=`` / ``--test-data``), the source's own
(default digits, ``x_test``, ``PrivateTest``, ``train/ val/ test/`` folders), else a stratified share held out of
the training rows with its own seed; test files whose classes or image size differ are refused naming both."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress import data
from compress.cli import main
from compress.data import DataError
from compress.data.default import DEFAULT_TEST_COUNT, default_arrays

PIL = pytest.importorskip("PIL.Image")


def _csv(path, n=70, side=4, seed=0, header="label,feature", usage=None):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        px = " ".join(str(v) for v in rng.integers(0, 256, side * side))
        rows.append(f"{i % 7},{px}" + (f",{usage(i)}" if usage else ""))
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _images(folder, classes, per_class=4, size=(6, 6), mode="L", seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            PIL.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(folder / c / f"{i}.png")


# ------------------------------------------------------------------------------------ held out of the training file

def test_a_csv_without_a_test_split_holds_one_out_stratified_with_its_own_seed(tmp_path):
    path = _csv(tmp_path / "d.csv")
    b = data.load(path)
    assert (len(b.train), len(b.val), len(b.test)) == (56, 7, 7)              # 1 of 10 per class, then 1 of 9
    assert sorted(b.test.y.tolist()) == list(range(7))
    assert b.origin["test_split"] == "held_out"
    assert b.options["test_fraction"] == 0.1 and b.options["test_seed"] == 0 and b.options["test"] is None
    other_seed = data.load(path, seed=3)                                      # seed moves validation, not test
    assert torch.equal(other_seed.test.x, b.test.x) and not torch.equal(other_seed.val.x, b.val.x)
    assert not torch.equal(data.load(path, test_seed=1).test.x, b.test.x)
    assert data.load(path, test_fraction=0).test is None
    again = data.load(b.source, **b.options)                                   # what a run folder reloads
    assert all(torch.equal(getattr(again, s).x, getattr(b, s).x) for s in ("train", "val", "test"))
    assert "held out: 0.1 of each class, seed 0" in b.describe()


def test_bad_test_fraction_is_refused():
    with pytest.raises(ValueError, match="test_fraction must be in"):
        data.load("default", test_fraction=1.0)


def test_the_default_data_keeps_its_fixed_test_split():
    b = data.load("default", test_fraction=0.3, test_seed=9)                 # its own split: no effect
    x, y = default_arrays()
    assert (len(b.train), len(b.val), len(b.test)) == (3600, 400, DEFAULT_TEST_COUNT)
    assert b.origin["test_split"] == "source"
    same = data.load("default")
    assert torch.equal(same.test.x, b.test.x) and torch.equal(same.train.x, b.train.x)


def test_kaggle_csv_keeps_private_test_and_holds_out_without_it(tmp_path):
    names = {0: "Training", 1: "Training", 2: "PublicTest", 3: "PrivateTest"}
    full = _csv(tmp_path / "k.csv", n=80, header="emotion,pixels,Usage", usage=lambda i: names[i % 4])
    b = data.load(full)
    assert (len(b.train), len(b.val), len(b.test)) == (40, 20, 20) and b.origin["test_split"] == "source"
    no_private = _csv(tmp_path / "k2.csv", n=80, header="emotion,pixels,Usage",
                      usage=lambda i: "PublicTest" if i % 4 == 2 else "Training")
    b = data.load(no_private)
    assert len(b.val) == 20 and b.origin["test_split"] == "held_out" and len(b.train) + len(b.test) == 60


def test_npz_keeps_x_test_and_holds_out_without_it(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, 5, 5)).astype(np.uint8), np.arange(40) % 4
    np.savez(tmp_path / "own.npz", x=x, y=y, x_test=x[:8], y_test=y[:8])
    assert data.load(tmp_path / "own.npz").origin["test_split"] == "source"
    np.savez(tmp_path / "none.npz", x=x, y=y)
    b = data.load(tmp_path / "none.npz")
    assert len(b.test) == 4 and b.origin["test_split"] == "held_out"


# ---------------------------------------------------------------------------------------- train/ val/ test/ folders

def test_split_folders_are_kept_and_numbered_by_train_classes(tmp_path):
    _images(tmp_path / "imgs" / "train", ["cat", "dog", "owl"], per_class=5)
    _images(tmp_path / "imgs" / "val", ["cat", "dog", "owl"], per_class=2, seed=1)
    _images(tmp_path / "imgs" / "test", ["dog", "owl"], per_class=3, seed=2, mode="RGB")   # a class short, in color
    b = data.load(tmp_path / "imgs")
    assert b.class_names == ("cat", "dog", "owl")
    assert (len(b.train), len(b.val), len(b.test)) == (15, 6, 6)
    assert b.origin["test_split"] == "source" and b.in_chans == 3            # gray splits repeated to RGB
    assert sorted(set(b.test.y.tolist())) == [1, 2]                           # dog, owl as train numbers them
    assert torch.equal(b.train.x[:, 0], b.train.x[:, 1])


def test_split_folders_without_test_hold_one_out(tmp_path):
    _images(tmp_path / "imgs" / "train", ["a", "b"], per_class=10)
    _images(tmp_path / "imgs" / "valid", ["a", "b"], per_class=2)
    b = data.load(tmp_path / "imgs")
    assert (len(b.train), len(b.val), len(b.test)) == (18, 4, 2) and b.origin["test_split"] == "held_out"


def test_split_folder_with_a_class_not_in_train_is_refused(tmp_path):
    _images(tmp_path / "imgs" / "train", ["a", "b"])
    _images(tmp_path / "imgs" / "test", ["a", "zebra"])
    with pytest.raises(DataError, match=r"test: classes \(a, zebra\) differ from the training data .*train \(a, b\)"):
        data.load(tmp_path / "imgs")


def test_a_plain_class_folder_named_like_splits_is_still_classes(tmp_path):
    _images(tmp_path / "imgs", ["train", "test"], per_class=10)              # classes, no class subfolders below
    b = data.load(tmp_path / "imgs")
    assert b.class_names == ("test", "train") and b.origin["test_split"] == "held_out"


# ---------------------------------------------------------------------------------------------------- test files

def test_a_test_file_replaces_any_other_test_split(tmp_path):
    train, test = _csv(tmp_path / "train.csv"), _csv(tmp_path / "test.csv", n=14, seed=5)
    b = data.load(train, test=test)
    assert len(b.test) == 14 and len(b.train) + len(b.val) == 70            # nothing held out
    assert b.origin["test_split"] == "test_data" and b.options["test"] == str(test.resolve())
    assert b.origin["test_data"]["sha256"] != b.origin["source"]["sha256"]
    d = data.load("default", test=_digits_npz(tmp_path))
    assert len(d.test) == 10 and (len(d.train), len(d.val)) == (3600, 400)   # the default's train/val unchanged


def _digits_npz(tmp_path):
    x, y = default_arrays()
    np.savez(tmp_path / "digits.npz", x=x[:10], y=y[:10], class_names=np.array([str(i) for i in range(10)]))
    return tmp_path / "digits.npz"


def test_an_unlabeled_test_file_keeps_its_ids(tmp_path):
    train = _csv(tmp_path / "train.csv")
    rng = np.random.default_rng(1)
    rows = [f"row{i}," + " ".join(str(v) for v in rng.integers(0, 256, 16)) for i in range(3)]
    (tmp_path / "u.csv").write_text("id,feature\n" + "\n".join(rows) + "\n")
    b = data.load(train, test=tmp_path / "u.csv")
    assert b.test.ids == ["row0", "row1", "row2"] and not b.test.labeled


def test_a_test_file_of_another_size_or_classes_is_refused_naming_both(tmp_path):
    train = _csv(tmp_path / "train.csv")
    other = _csv(tmp_path / "big.csv", side=5)
    with pytest.raises(DataError) as err:
        data.load(train, test=other)
    text = str(err.value)
    assert "\n" not in text and "big.csv" in text and "train.csv" in text and "5x5" in text and "4x4" in text
    assert len(data.load(train, test=other, input_size=4).test) == 70          # resized alike: accepted
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.integers(0, 256, (20, 4, 4)).astype(np.uint8), y=np.arange(20) % 2,
             class_names=np.array(["cat", "dog"]))
    np.savez(tmp_path / "b.npz", x=rng.integers(0, 256, (6, 4, 4)).astype(np.uint8), y=np.arange(6) % 2,
             class_names=np.array(["cat", "cow"]))
    with pytest.raises(DataError, match=r"b\.npz: classes \(cat, cow\) differ from the training data .*a\.npz"):
        data.load(tmp_path / "a.npz", test=tmp_path / "b.npz")
    with pytest.raises(FileNotFoundError, match="test data 'nope.csv'"):
        data.load(train, test="nope.csv")


# --------------------------------------------------------------------------------------------------------- CLI

def test_cli_train_and_evaluate_take_test_data(tmp_path, capsys):
    train, test = _csv(tmp_path / "train.csv", n=140, side=8), _csv(tmp_path / "test.csv", n=21, side=8, seed=4)
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--data", str(train), "--test-data", str(test), "--epochs", "1",
                 "--no-augment", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    assert "test_acc" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["test_split"] == "test_data" and config["data"]["n_test"] == 21
    assert config["data"]["options"]["test"] == str(test.resolve())
    assert main(["evaluate", str(out)]) == 0
    assert f"[test from {test.resolve()}]" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--data", str(train), "--json"]) == 0      # held out of --data instead
    assert json.loads(capsys.readouterr().out)["test_split"] == "held_out"
    bad = _csv(tmp_path / "bad.csv", n=14, side=5)
    assert main(["train", "--model", "mlp", "--data", str(train), "--test-data", str(bad), "--epochs", "1",
                 "--out", str(tmp_path / "run2"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("compress train: error:") and "\n" not in err and "bad.csv" in err and "train.csv" in err
    assert not (tmp_path / "run2").exists()
    assert main(["evaluate", str(out), "--test-data", str(test)]) == 2            # needs --data
