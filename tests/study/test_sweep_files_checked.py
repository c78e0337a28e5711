"""A sweep folder's files are checked when read back (issue 27, N19 and N17): a tampered record (an accuracy of
5.0, a negative count, a string for a number) is refused naming its file instead of going into results.csv; a
sweep.json that is not a settings file is refused in one line naming it."""

from __future__ import annotations

import json

import pytest

from compress.cli import main
from compress.study import SweepConfig, run_sweep
from compress.study.records import check_record
from compress.study.sweep import _check_config

DATA = "synthetic:n=240,classes=3,size=12"
ARGS = ["sweep", "--data", DATA, "--families", "mlp", "--budgets", "5k", "--policies", "width", "--resolution", "1",
        "--seeds", "2", "--epochs", "1", "--batch-size", "32", "--no-latency"]


def tiny() -> SweepConfig:
    return SweepConfig(data=DATA, families=("mlp",), budgets=(5_000,), policies=("width",), resolution=1.0,
                       seeds=2, epochs=1, batch_size=32, latency=False)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


def test_real_records_pass(swept):
    for path in (swept / "records").glob("*.json"):
        assert check_record(json.loads(path.read_text()), path.stem) is None


PRUNING_RECORD = {"run_id": "mlp-5000-prune-s0", "family": "mlp", "budget": None, "method": "prune", "seed": 0,
                  "param_count": 4000, "macs": 4000, "val_acc": 0.5, "test_acc": None, "best_epoch": 1, "epochs": 2,
                  "max_epochs": 2.5, "converged": None, "train_seconds": 1.5, "run_dir": "pruning/runs/x"}


def test_a_pruning_record_passes():
    assert check_record(PRUNING_RECORD, "mlp-5000-prune-s0") is None


@pytest.mark.parametrize("change, match", [
    (dict(test_acc=5.0), "test_acc 5.0 is not an accuracy in \\[0, 1\\]"),
    (dict(val_acc=-0.1), "val_acc"), (dict(val_acc="0.9"), "val_acc"), (dict(val_acc=float("nan")), "val_acc"),
    (dict(param_count=-3), "param_count -3 is not an integer >= 0"), (dict(macs=1.5), "macs"),
    (dict(seed=True), "seed"), (dict(epochs=None), "epochs"), (dict(train_seconds=float("inf")), "train_seconds"),
    (dict(family=3), "family"), (dict(converged="yes"), "converged"), (dict(run_id="other"), "file's name"),
    (dict(run_dir="../../etc"), "run_dir"), (dict(run_dir="/etc"), "run_dir"), (dict(latency_ms=-1), "latency_ms"),
])
def test_a_tampered_record_is_refused_naming_its_file(swept, tmp_path, capsys, change, match):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(swept, out)
    path = sorted((out / "records").glob("*.json"))[0]
    csv = (out / "results.csv").read_bytes()
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=match) as info:
        run_sweep(SweepConfig.from_dict(json.loads((out / "sweep.json").read_text())["config"]), out, progress=None)
    assert str(path) in str(info.value)
    assert main([*ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    assert (out / "results.csv").read_bytes() == csv and not (out / "sweep.lock").exists()


def test_a_record_that_is_not_an_object_is_refused(tmp_path):
    assert "not an object" in check_record([1, 2], "x")
    assert "no family" in check_record({"run_id": "x"}, "x")


@pytest.mark.parametrize("text, match", [
    ("5", "a JSON int, not an object"), ("[1, 2]", "a JSON list, not an object"),
    ('{"config": 5}', "'config' is a JSON int"), ('{"config": [1, 2]}', "'config' is a JSON list"),
    ("{not json", "unreadable"), (b"\xff\xfe\x00garbage", "unreadable"),
])
def test_a_bad_sweep_json_is_refused_naming_it(tmp_path, capsys, text, match):
    out = tmp_path / "s"
    out.mkdir()
    path = out / "sweep.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=match):
        _check_config(out, tiny(), overwrite=False)
    assert main([*ARGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "--overwrite" in err[0]
    _check_config(out, tiny(), overwrite=True)   # what --overwrite does: start over
    assert not path.exists()
