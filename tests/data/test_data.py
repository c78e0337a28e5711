"""compress.data: every source layout, splits, statistics, and each kind of bad row (error and skip)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress import data
from compress.data import FER_CLASSES, DataError


def _pixels(rng, n=16):
    return " ".join(str(v) for v in rng.integers(0, 256, n))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def course_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{i % 7},{_pixels(rng)}" for i in range(42)]
    return _write(tmp_path, "train.csv", "label,feature\n" + "\n".join(rows) + "\n")


# ------------------------------------------------------------------------------------------- default

def test_default_is_mnist_with_fixed_test_split():
    b = data.load("default")
    assert b.class_names == tuple(str(i) for i in range(10))
    assert (b.in_chans, b.input_size) == (1, 28)
    assert len(b.train) + len(b.val) + len(b.test) == 5000
    assert len(b.test) == 1000 and torch.bincount(b.test.y).tolist() == [100] * 10
    assert b.train.x.dtype == torch.uint8 and b.train.y.dtype == torch.int64
    assert not b.flip_invariant
    other = data.load("default", seed=1)
    assert torch.equal(other.test.x, b.test.x)             # the test split never depends on the seed
    assert not torch.equal(other.val.y, b.val.y) or not torch.equal(other.val.x, b.val.x)
    again = data.load("default")
    assert torch.equal(again.val.x, b.val.x)                # same seed, same split
    # statistics come from the training split only
    assert b.mean[0] == pytest.approx(float(b.train.x.float().mean() / 255), abs=1e-5)


def test_normalize_uses_training_statistics():
    b = data.load("synthetic:n=80,classes=2,size=8")
    z = b.normalize(b.train.x)
    assert z.dtype == torch.float32
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4)
    assert float(z.std()) == pytest.approx(1.0, abs=1e-2)
    assert torch.allclose(b.val.normalize(b.val.x), b.normalize(b.val.x))


# ------------------------------------------------------------------------------------------ synthetic

def test_synthetic_round_trips_through_its_source_string():
    b = data.synthetic(120, num_classes=3, size=12, in_chans=2, seed=5)
    again = data.load(b.source)
    assert torch.equal(again.train.x, b.train.x) and torch.equal(again.test.y, b.test.y)
    assert (b.in_chans, b.input_size, b.num_classes) == (2, 12, 3)
    with pytest.raises(ValueError, match="bad option"):
        data.load("synthetic:bogus=3")


# ---------------------------------------------------------------------------------------- CSV layouts

def test_course_csv(course_csv):
    b = data.load(course_csv, val_fraction=1 / 6, test_fraction=0)   # no held-out test split (test_test_splits.py)
    assert b.class_names == FER_CLASSES
    assert b.input_size == 4 and b.in_chans == 1
    assert (len(b.train), len(b.val), b.test) == (35, 7, None)
    assert sorted(b.val.y.tolist()) == list(range(7))       # stratified: one of each class
    first = np.array(course_csv.read_text().splitlines()[1].split(",")[1].split(), dtype=np.uint8)
    everything = torch.cat([b.train.x, b.val.x]).reshape(-1, 16).numpy()
    assert any((row == first).all() for row in everything)


def test_input_size_resizes_and_sets_grid(tmp_path, course_csv):
    assert data.load(course_csv, input_size=8).input_size == 8
    rng = np.random.default_rng(1)
    rows = [f"{i % 7},{_pixels(rng, 12)}" for i in range(14)]
    path = _write(tmp_path, "wide.csv", "label,feature\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="not a square"):
        data.load(path)
    assert data.load(path, input_size=(3, 4)).image_hw == (3, 4)


def test_kaggle_csv_usage_gives_splits(tmp_path):
    rng = np.random.default_rng(2)
    usage = ["Training"] * 21 + ["PublicTest"] * 7 + ["PrivateTest"] * 7
    rows = [f"{i % 7},{_pixels(rng)},{u}" for i, u in enumerate(usage)]
    path = _write(tmp_path, "fer2013.csv", "emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    b = data.load(path)
    assert (len(b.train), len(b.val), len(b.test)) == (21, 7, 7)
    assert b.class_names == FER_CLASSES
    # no PublicTest rows: validation comes out of Training
    rows = [r for r in rows if "PublicTest" not in r]
    b = data.load(_write(tmp_path, "fer_no_public.csv", "emotion,pixels,Usage\n" + "\n".join(rows)),
                  val_fraction=1 / 3)
    assert (len(b.train), len(b.val), len(b.test)) == (14, 7, 7)


def test_unlabeled_csv_keeps_ids(tmp_path):
    rng = np.random.default_rng(3)
    rows = [f"{100 + i},{_pixels(rng)}" for i in range(5)]
    b = data.load(_write(tmp_path, "test.csv", "id,feature\n" + "\n".join(rows) + "\n"))
    assert b.train is None and b.val is None
    assert b.test.ids == ["100", "101", "102", "103", "104"]
    assert b.test.y.tolist() == [-1] * 5 and not b.test.labeled


def test_fast_and_checking_parsers_agree(course_csv):
    from compress.data.readers import BadRows, parse_pixels

    fields = [line.split(",")[1] for line in course_csv.read_text().splitlines()[1:]]
    lines = list(range(2, len(fields) + 2))
    fast, kept = parse_pixels(fields, lines, None, BadRows(course_csv, skip=False))
    slow, kept_slow = parse_pixels(fields, lines, None, BadRows(course_csv, skip=False), fast=False)
    assert np.array_equal(fast, slow) and kept == kept_slow == list(range(len(fields)))


BAD_ROWS = [  # (row text, words the message must contain)
    ("3,1 2 3", "wrong pixel count: expected 16, got 3"),
    ("3," + " ".join(["7"] * 15) + " x7", "non-numeric pixel 'x7'"),
    ("3," + " ".join(["7"] * 15) + " 256", "pixel 16 = 256 out of range"),
    ("3," + " ".join(["7"] * 15) + " -1", "out of range"),
    ("3," + " ".join(["7"] * 15) + " 2.5", "out of range"),
    ("," + " ".join(["7"] * 16), "missing label"),
    ("9," + " ".join(["7"] * 16), "label 9 out of range 0..6"),
    ("happy," + " ".join(["7"] * 16), "label 'happy' is not an integer"),
    ("3," + " ".join(["7"] * 16) + ",extra", "expected 2 comma-separated fields"),
    ("3,", "missing pixels"),
]


@pytest.mark.parametrize("bad,message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_bad_row_error_names_file_line_and_problem(tmp_path, bad, message):
    rng = np.random.default_rng(4)
    rows = [f"{i % 7},{_pixels(rng)}" for i in range(14)]
    rows.insert(5, bad)                                     # header is line 1, so this is line 7
    path = _write(tmp_path, "bad.csv", "label,feature\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError) as info:
        data.load(path)
    text = str(info.value)
    assert "bad.csv" in text and "line 7" in text and message in text
    b = data.load(path, skip_bad_rows=True)
    assert len(b.skipped) == 1
    file, line, reason = b.skipped[0]
    assert file.endswith("bad.csv") and line == 7 and message in reason
    assert len(b.train) + len(b.val) == 14


def test_bad_usage_and_whole_file_problems(tmp_path):
    rows = "emotion,pixels,Usage\n1," + " ".join(["0"] * 16) + ",Training\n2," + " ".join(["0"] * 16) + ",Later\n"
    with pytest.raises(DataError, match=r"u\.csv: line 3: unknown Usage 'Later'"):
        data.load(_write(tmp_path, "u.csv", rows))
    with pytest.raises(DataError, match="empty"):
        data.load(_write(tmp_path, "empty.csv", ""))
    with pytest.raises(DataError, match="line 1: unknown header"):
        data.load(_write(tmp_path, "h.csv", "a,b,c\n1,2,3\n"))
    with pytest.raises(DataError, match="no data rows"):
        data.load(_write(tmp_path, "only.csv", "label,feature\n"))
    with pytest.raises(DataError, match="no usable rows"):
        data.load(_write(tmp_path, "allbad.csv", "label,feature\n9,1 2 3 4\n"), skip_bad_rows=True)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        data.load(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="val_fraction"):
        data.load("default", val_fraction=1.5)


def test_mixed_sizes_in_csv_keep_the_common_one(tmp_path):
    rng = np.random.default_rng(5)
    rows = [f"{i % 7},{_pixels(rng)}" for i in range(14)] + ["1," + _pixels(rng, 25)]
    path = _write(tmp_path, "mixed.csv", "label,feature\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="line 16: wrong pixel count: expected 16, got 25"):
        data.load(path)
    assert data.load(path, skip_bad_rows=True).input_size == 4


# ------------------------------------------------------------------------------------------------ npz

@pytest.mark.parametrize("layout", ["NHW", "NCHW", "NHWC"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (30, 3, 5, 5)).astype(np.uint8) if layout != "NHW" else \
        rng.integers(0, 256, (30, 5, 5)).astype(np.uint8)
    if layout == "NHWC":
        x = x.transpose(0, 2, 3, 1)
    y = np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]))
    b = data.load(tmp_path / "d.npz")
    assert b.class_names == ("a", "b", "c")
    assert b.in_chans == (1 if layout == "NHW" else 3) and b.input_size == 5
    assert len(b.train) + len(b.val) + len(b.test) == 30 and b.origin["test_split"] == "held_out"


def test_npz_bad_input(tmp_path):
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    with pytest.raises(DataError, match="missing array 'x'"):
        data.load(tmp_path / "nox.npz")
    np.savez(tmp_path / "neg.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, -1, 1]))
    with pytest.raises(DataError, match=r"y\[1\] = -1 is negative"):
        data.load(tmp_path / "neg.npz")
    np.savez(tmp_path / "float.npz", x=np.full((3, 4, 4), 0.5), y=np.array([0, 1, 1]))
    with pytest.raises(DataError, match="integers 0..255"):
        data.load(tmp_path / "float.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz: not a readable"):
        data.load(tmp_path / "junk.npz")


# --------------------------------------------------------------------------------------------- folder

def _image_folder(root, sizes=((6, 6),) * 3):
    from PIL import Image

    rng = np.random.default_rng(7)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    b = data.load(_image_folder(tmp_path / "imgs"), val_fraction=1 / 3)
    assert b.class_names == ("cat", "dog")
    assert (len(b.train), len(b.val)) == (4, 2)
    assert (b.in_chans, b.input_size) == (1, 6)


def test_image_folder_bad_images(tmp_path):
    root = _image_folder(tmp_path / "mixed", sizes=((6, 6), (6, 6), (7, 6)))
    with pytest.raises(DataError, match=r"2\.png: image size 6x7 differs"):
        data.load(root)
    assert data.load(root, input_size=6).input_size == 6
    root = _image_folder(tmp_path / "broken")
    (root / "dog" / "9.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"9\.png: unreadable image"):
        data.load(root)
    b = data.load(root, skip_bad_rows=True)
    assert len(b.skipped) == 1 and b.skipped[0][0].endswith("9.png")
    with pytest.raises(DataError, match="no class subfolders"):
        data.load(tmp_path / "broken" / "dog")


def test_stratified_split_is_seeded_and_stratified():
    y = np.repeat(np.arange(4), 10)
    keep, held = data.stratified_split(y, 0.2, seed=3)
    assert np.bincount(y[held]).tolist() == [2, 2, 2, 2]
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(40))
    assert np.array_equal(held, data.stratified_split(y, 0.2, seed=3)[1])
    assert not np.array_equal(held, data.stratified_split(y, 0.2, seed=4)[1])


def test_from_arrays():
    rng = np.random.default_rng(8)
    b = data.from_arrays(rng.integers(0, 256, (20, 4, 4)), np.arange(20) % 2, class_names=["no", "yes"])
    assert b.source == "arrays" and b.num_classes == 2 and len(b.train) + len(b.val) == 20


def test_resolve_split_and_model_inputs_are_the_one_way_to_pass_data():
    from compress.data import Normalizer, model_inputs, resolve_split

    bundle = data.load("synthetic:n=200,classes=4,size=8,seed=0", seed=0)
    split, norm = resolve_split(bundle)
    assert split is bundle.split() and norm.mean == bundle.mean
    raw = Normalizer(bundle.mean, bundle.std, enabled=False)
    split, norm = resolve_split(bundle.val, normalizer=raw)
    assert split is bundle.val and norm is raw
    with pytest.raises(TypeError, match="DataBundle or a Split"):
        resolve_split(bundle.train.x)
    x = model_inputs(bundle, 16, normalizer=raw, seed=3)
    assert x.shape == (16, *bundle.train.x.shape[1:]) and x.dtype == torch.float32 and float(x.max()) > 1
    assert torch.equal(x, model_inputs(bundle, 16, normalizer=raw, seed=3))
    assert len(model_inputs(bundle.val, 10_000)) == len(bundle.val)
    with pytest.raises(ValueError, match="count"):
        model_inputs(bundle, 0)
