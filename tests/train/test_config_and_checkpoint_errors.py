"""Training settings and checkpoints that cannot work are refused in one line naming them (issue 27, N17):
``eval_batch_size=0`` before training (not "range() arg 3 must not be zero" after it), a truncated checkpoint.pt
with the file's name (not a bare "[Errno 22] Invalid argument")."""

from __future__ import annotations

import shutil

import pytest

from compress.cli import main
from compress.train import TrainConfig, load_run


@pytest.mark.parametrize("value", [0, -1])
def test_eval_batch_size_must_be_positive(value):
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1"):
        TrainConfig(eval_batch_size=value)


def test_cli_refuses_eval_batch_size_zero_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", "--data", "synthetic:n=120,classes=3,size=12", "--model", "mlp", "--epochs", "1",
                   "--set", "eval_batch_size=0", "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eval_batch_size" in err[0]
    assert not out.exists()


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=200, epochs=1)


@pytest.mark.parametrize("size", [0, 100, 5_000, 20_000, -1])
def test_a_truncated_checkpoint_is_named(run_dir, tmp_path, capsys, size):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ckpt = run / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[:size] if size >= 0 else data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated") as info:
        load_run(run)
    assert str(ckpt) in str(info.value) and "\n" not in str(info.value)
    out = tmp_path / "m.npz"
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(ckpt) in err[0] and not out.exists()


def test_a_missing_checkpoint_is_still_the_os_error(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "checkpoint.pt").unlink()
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        load_run(run)
