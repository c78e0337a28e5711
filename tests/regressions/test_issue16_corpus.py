"""Issue 16's reproductions, one each: every one ends in one line naming the input, exit status 2, nothing
overwritten (classes 2 and 4-8; class 1's memory bounds are in test_artifact_memory / test_reader_memory)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch
from torch import nn

from compress.cli import main
from compress.data import DataError, load
from compress.profile import profile

DATA = "synthetic"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("i16") / "run"
    assert main(["train", "--model", "cnn", "--model-opt", "channels=[4,8]", "--data", DATA, "--epochs", "1",
                 "--no-augment", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    return out


def _one_line_error(capsys, argv, *words):
    """Exit status 2 and one error line (argparse's own errors come after its usage lines), no traceback."""
    try:
        status = main(argv)
    except SystemExit as exc:   # argparse rejected an argument's value
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.splitlines()[-1].startswith("compress "), err
    for w in words:
        assert w in err.splitlines()[-1], err
    return err


def test_profile_leaves_a_reused_module_usable():
    lin = nn.Linear(10, 10)
    m = nn.Sequential(lin, nn.ReLU(), lin)
    assert profile(m, (1, 1, 10)).macs == 200
    assert lin.weight.device.type == "cpu" and m(torch.randn(2, 10)).shape == (2, 10)


@pytest.mark.parametrize("argv,word", [
    (["train", "--model", "cnn", "--threads", "-1"], "threads"), (["train", "--lr", "inf"], "--lr"),
    (["train", "--rotate", "nan"], "--rotate"), (["export", "R", "--max-bytes", "inf"], "--max-bytes"),
    (["scale", "--family", "cnn", "--max-params", "inf"], "--max-params"), (["sweep", "--budgets", "inf"], "--budgets"),
    (["export", "R", "--tolerance", "nan"], "--tolerance"), (["sweep", "--set", "lr=abc"], "lr"),
    (["sweep", "--set", "lr=Infinity"], "lr"), (["sweep", "--set", "scale_range=5"], "scale_range"),
    (["sweep", "--set", "seed=1e20"], "seed")])
def test_numbers_are_validated_before_any_work(capsys, tmp_path, argv, word):
    _one_line_error(capsys, [*argv, "--out", str(tmp_path / "o")] if argv[0] in ("train", "sweep") else argv, word)
    assert not (tmp_path / "o").exists()


def test_predict_never_overwrites_its_input(capsys, tmp_path, run_dir):
    src = tmp_path / "v.npz"
    np.savez(src, x=np.zeros((4, 16, 16), np.uint8), y=np.array([0, 1, 0, 1]))
    before = src.read_bytes()
    _one_line_error(capsys, ["predict", str(run_dir), "--data", str(src), "--out", str(src), "--overwrite"],
                    "input")
    assert src.read_bytes() == before
    existing = tmp_path / "old.csv"
    existing.write_text("keep\n")
    _one_line_error(capsys, ["predict", str(run_dir), "--data", str(src), "--out", str(existing)], "--overwrite")
    assert existing.read_text() == "keep\n"
    _one_line_error(capsys, ["predict", str(run_dir), "--data", str(src), "--out", str(tmp_path)], "folder")


def test_export_never_replaces_the_runs_checkpoint(capsys, run_dir):
    before = (run_dir / "checkpoint.pt").read_bytes()
    _one_line_error(capsys, ["export", str(run_dir), "--out", str(run_dir / "checkpoint.pt"), "--overwrite"],
                    "input")
    assert (run_dir / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("content,word", [(b"plain text, not gzip\n", "gzip"), (None, "truncated")])
def test_bad_gzip_is_a_data_error(tmp_path, content, word):
    path = tmp_path / "d.csv.gz"
    path.write_bytes(content if content is not None
                     else gzip.compress(b"label,feature\n" + b"0,1 2 3 4\n" * 100)[:30])
    with pytest.raises(DataError, match=word):
        load(path)


def test_empty_npz_and_other_x_test_size(tmp_path):
    np.savez(tmp_path / "e.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    with pytest.raises(DataError, match=r"e\.npz: x and y hold no images"):
        load(tmp_path / "e.npz")
    np.savez(tmp_path / "t.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]),
             x_test=np.zeros((2, 9, 9), np.uint8), y_test=np.array([0, 1]))
    with pytest.raises(DataError, match=r"t\.npz: x_test images are \(1, 9, 9\)"):
        load(tmp_path / "t.npz")


def test_a_one_row_csv_names_the_file(capsys, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("label,feature\n0," + " ".join(["7"] * 16) + "\n")
    _one_line_error(capsys, ["train", "--model", "cnn", "--data", str(path), "--epochs", "1", "--device", "cpu", "--out",
                             str(tmp_path / "r"), "--quiet"], "one.csv")
    assert not (tmp_path / "r").exists()


def test_the_fer_image_size_decides_which_line_is_wrong(tmp_path):
    path = tmp_path / "fer.csv"
    path.write_text("emotion,pixels,Usage\n0," + " ".join(["1"] * 2304) + ",Training\n1,"
                    + " ".join(["1"] * 2303) + ",Training\n")
    with pytest.raises(DataError, match=r"line 3: wrong pixel count: expected 2304, got 2303 \(expected: 48x48"):
        load(path)
    bundle = load(path, skip_bad_rows=True, val_fraction=0.0)
    assert len(bundle.train) == 1 and bundle.skipped[0][1] == 3


def test_a_decompression_bomb_png_is_a_data_error(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        pil.new("L", (8, 8)).save(tmp_path / cls / "ok.png")
    pil.new("1", (10_000, 10_000)).save(tmp_path / "a" / "bomb.png")   # 1-bit: 100 M pixels in ~40 KB
    with pytest.raises(DataError, match="bomb.png"):
        load(tmp_path)


# ------------------------------------------------------------------ class 5: broken run folders
def _copy_run(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    return copy


class _Payload:
    """Pickled into a checkpoint: unpickling it would create the file ``target`` (it must never run)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("damage,word", [("truncated", "not a readable checkpoint"),
                                         ("pickled", "not a readable checkpoint"),
                                         ("not_a_state_dict", "not a state_dict")])
def test_a_broken_checkpoint_is_one_line(capsys, tmp_path, run_dir, damage, word):
    run = _copy_run(run_dir, tmp_path)
    ckpt = run / "checkpoint.pt"
    if damage == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:300])
    elif damage == "pickled":
        torch.save({"conv.weight": _Payload(tmp_path / "pwned")}, ckpt)
    else:
        torch.save([torch.zeros(3)], ckpt)
    _one_line_error(capsys, ["evaluate", str(run)], "checkpoint.pt", word)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("edit,word", [
    (lambda c: c.pop("data"), "key data missing"),
    (lambda c: c["data"].pop("normalizer"), "data.normalizer missing"),
    (lambda c: c["data"].update(class_names=5), "data.class_names must be a JSON list"),
    (lambda c: c["data"]["normalizer"].update(enabled="yes"), "data.normalizer.enabled"),
    (lambda c: c.update(train=[1, 2]), "train must be a JSON object"),
    (lambda c: c["train"].update(lr="fast"), "lr"),
    (lambda c: c["model"].update(card={"build_args": "x"}), "model.card"),
    (lambda c: c["model"]["card"]["build_args"].update(width_mult=30.0), "checkpoint.pt does not fit"),
    (lambda c: c.clear(), "format None")])
def test_a_broken_config_json_is_one_line(capsys, tmp_path, run_dir, edit, word):
    import json

    run = _copy_run(run_dir, tmp_path)
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    err = _one_line_error(capsys, ["evaluate", str(run)], word)
    assert "config.json" in err.splitlines()[-1] or "checkpoint.pt" in err.splitlines()[-1]


def test_a_list_for_history_is_required(capsys, tmp_path, run_dir):
    run = _copy_run(run_dir, tmp_path)
    (run / "history.json").write_text('{"epoch": 1}')
    _one_line_error(capsys, ["evaluate", str(run)], "history.json", "expected a JSON list")


# ------------------------------------------------------------------ class 9: leftovers (races: tests/study/test_sweep_lock.py)
def test_a_killed_runs_staging_folder_is_cleaned_by_the_next_run(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".r1.partial-{dead.pid}"
    live = tmp_path / f".r2.partial-{os.getppid()}"   # pytest's parent: alive, its staging folder is kept
    for p in (stale, live):
        p.mkdir()
        (p / "config.json").write_text("{}")
    assert main(["train", "--model", "mlp", "--data", DATA, "--epochs", "1", "--device", "cpu", "--out",
                 str(tmp_path / "r3"), "--quiet"]) == 0
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "r3"])
