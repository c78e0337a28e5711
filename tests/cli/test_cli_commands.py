"""Commands end to end on a tiny run that `compress train` writes: train, evaluate, predict, bench, profile, and
the study/sweep commands' one library call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compress.cli import main

DATA = "synthetic:n=120,classes=3,size=16"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    status = main(["train", "--model", "cnn", "--model-opt", "channels=[4,8]", "--data", DATA, "--epochs", "1",
                   "--no-augment", "--device", "cpu", "--out", str(out), "--quiet"])
    assert status == 0
    return out


def test_train_writes_curves_and_keeps_library_defaults(run_dir):
    assert (run_dir / "curves.png").stat().st_size > 0
    train = json.loads((run_dir / "config.json").read_text())["train"]
    from compress.train import TrainConfig

    assert train["epochs"] == 1 and train["augment"] is False
    assert train["lr"] == TrainConfig.lr and train["batch_size"] == TrainConfig.batch_size


def test_train_refuses_existing_out(run_dir, capsys):
    assert main(["train", "--model", "cnn", "--data", DATA, "--out", str(run_dir)]) == 2
    assert capsys.readouterr().err.startswith("compress train: error:")


def test_train_needs_a_model(capsys, tmp_path):
    """No default model: `compress train --out X` once trained the 3.2M-parameter MobileNetV1 for 30 epochs."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and "required: --model" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_evaluate_default_and_named_split(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["split"] in ("test", "val") and 0 <= default["acc"] <= 1
    assert main(["evaluate", str(run_dir), "--split", "train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "train"


def test_bad_device_is_a_user_error(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--device", "tpu"]) == 2
    assert "compress evaluate: error: device must be" in capsys.readouterr().err


def test_predict_writes_csv(run_dir, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir), "--data", DATA, "--split", "val", "--out", str(out), "--names"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "id,label" and len(lines) > 1 and lines[1].split(",")[1].startswith("class")


def test_bench_takes_the_input_shape_from_the_card(run_dir, tmp_path, capsys):
    records = tmp_path / "bench.json"
    assert main(["bench", str(run_dir), "--runtimes", "eager", "--batch-sizes", "1", "--warmup", "0",
                 "--repeats", "2", "--json", str(records)]) == 0
    out = capsys.readouterr().out
    assert "input 1x16x16" in out and "eager" in out
    assert json.loads(records.read_text())[0]["input_shape"] == [1, 16, 16]
    artifact = tmp_path / "m.npz"
    assert main(["export", str(run_dir), "--out", str(artifact)]) == 0
    capsys.readouterr()
    assert main(["bench", str(artifact), "--runtimes", "eager", "--batch-sizes", "1", "--repeats", "2"]) == 0
    assert "input 1x16x16" in capsys.readouterr().out
    assert main(["bench", str(run_dir), "--device", "tpu"]) == 2


def test_profile_json_model_is_the_card(capsys):
    assert main(["profile", "cnn", "--width", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["build_args"]["name"] == "cnn" and out["model"]["build_args"]["width_mult"] == 0.5
    assert "bn_folded" in out["model"]


def test_study_makes_one_library_call(monkeypatch, capsys):
    import compress.study as study

    calls = []

    def fake_run_study(config, out, report, **kw):
        calls.append((config, out, report, kw))
        return Path(report) / "README.md"

    monkeypatch.setattr(study, "run_study", fake_run_study)
    assert main(["study", "--data", "fer2013.csv", "--no-explain"]) == 0
    config, out, report, kw = calls[0]
    assert config.ablate == study.STUDY_ABLATIONS and config.seeds == study.SweepConfig.seeds
    assert Path(out) == study.default_folder("fer2013.csv", "sweeps")
    assert Path(report) == study.default_folder("fer2013.csv", "reports")
    assert kw["explain"] is False and kw["overwrite"] is False


def test_sweep_uses_library_executor_and_folder(monkeypatch, capsys):
    import compress.study as study

    seen = {}

    def fake_run_sweep(config, out, *, executor, overwrite, loggers):
        seen.update(config=config, out=out, executor=executor, loggers=loggers)
        return {"records": []}

    monkeypatch.setattr(study, "run_sweep", fake_run_sweep)
    assert main(["sweep", "--seeds", "1", "--jobs", "1"]) == 0
    assert seen["config"].seeds == 1 and Path(seen["out"]) == study.default_folder("default", "sweeps")
    assert isinstance(seen["executor"], study.SequentialExecutor) and seen["loggers"] is None
