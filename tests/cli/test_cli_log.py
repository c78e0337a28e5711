"""compress train / prune / search --log tensorboard,mlflow,csv: the logs read back with each library's reader;
bad names, missing packages and log folders that cannot be written are one line and exit 2 before the data loads."""

from __future__ import annotations

import csv
import sys

import pytest

from compress.cli import main

DATA = "synthetic:n=120,classes=3,size=12"
TRAIN = ["--data", DATA, "--model", "mlp", "--width", "0.125", "--epochs", "2", "--batch-size", "64",
         "--no-augment", "--threads", "1", "--quiet"]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    return ea, [(e.step, e.value) for e in ea.Scalars(tag)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mlp"
    assert main(["train", *TRAIN, "--out", str(out)]) == 0
    return out


def test_train_logs_to_all_three(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    out, logs = tmp_path / "run", tmp_path / "logs"
    assert main(["train", *TRAIN, "--out", str(out), "--log", "tensorboard,mlflow,csv", "--log-dir", str(logs)]) == 0
    assert "logger failed" not in capsys.readouterr().err
    rows = _csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "final"]
    ea, val = _scalars(logs / "runs" / "run", "val_acc")
    assert [s for s, _ in val] == [1, 2] and [v for _, v in val] == pytest.approx([float(r["val_acc"]) for r in rows[:2]])
    assert "figures/curves" in ea.Tags()["images"]
    client = MlflowClient(tracking_uri=(logs / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("compress").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run" and run.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert run.data.metrics["final/val_acc"] == pytest.approx(float(rows[-1]["val_acc"]))
    assert {"curves.png", "checkpoint.pt", "config.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_train_with_seeds_logs_each_member(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TRAIN, "--out", str(out), "--seeds", "2", "--log", "csv"]) == 0
    for seed in (0, 1):
        assert [r["step"] for r in _csv(tmp_path / f"run-s{seed}" / "metrics.csv")] == ["1", "2", "final"]


def test_prune_logs_every_fine_tuning_epoch(trained, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    out, logs = tmp_path / "pruned", tmp_path / "logs"
    assert main(["prune", str(trained), "--ratio", "0.5", "--steps", "2", "--finetune-epochs", "1", "--out", str(out),
                 "--quiet", "--log", "csv,mlflow", "--log-dir", str(logs)]) == 0
    rows = _csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == ["1", "2", "final"]   # one epoch after each of the two steps
    assert float(rows[-1]["pruned_param_count"]) > 0
    client = MlflowClient(tracking_uri=(logs / "mlruns").as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("compress").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["prune.ratio"] == "0.5"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2]
    assert "curves.png" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_search_logs_its_models_and_candidates(trained, tmp_path):
    pytest.importorskip("tensorboard")
    out, logs = tmp_path / "s", tmp_path / "logs"
    code = main(["search", str(trained), "--max-bytes", "20k", "--out", str(out), "--importances", "l1",
                 "--scopes", "uniform", "--storage", "int8+fold", "--codecs", "int8+fold", "--finetune-epochs", "1",
                 "--no-deep", "--no-baselines", "--runtime", "eager", "--quiet", "--log", "csv,tensorboard",
                 "--log-dir", str(logs)])
    assert code in (0, 2)
    candidates = _csv(out / "candidates.csv")
    rows = _csv(out / "metrics.csv")
    assert [r["step"] for r in rows] == [str(i) for i in range(1, len(candidates) + 1)] + ["final"]
    assert float(rows[-1]["candidates"]) == len(candidates)
    models = [p for p in (out / "models").iterdir() if p.is_dir()]
    assert models and all([r["step"] for r in _csv(m / "metrics.csv")] == ["1", "final"] for m in models)
    _, steps = _scalars(logs / "runs" / "s" / models[0].name, "train_loss")
    assert [s for s, _ in steps] == [1]
    _, sizes = _scalars(logs / "runs" / "s", "candidate_size_bytes")
    assert len(sizes) == len(candidates)


SWEEP = ["--data", DATA, "--families", "mlp", "--budgets", "2k", "--seeds", "2", "--epochs", "2", "--no-latency",
         "--policies", "width"]


def test_sweep_logs_every_run_and_itself(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    out, logs = tmp_path / "sw", tmp_path / "logs"
    assert main(["sweep", *SWEEP, "--out", str(out), "--log", "csv,tensorboard,mlflow", "--log-dir", str(logs)]) == 0
    assert "logger failed" not in capsys.readouterr().err
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == 2                                          # one point, two seeds trained together
    for name in runs:
        rows = _csv(out / "runs" / name / "metrics.csv")
        assert [r["step"] for r in rows] == ["1", "2", "final"]
        _, val = _scalars(logs / "runs" / "sw" / name, "val_acc")
        assert [v for _, v in val] == pytest.approx([float(r["val_acc"]) for r in rows[:2]])
    sweep_rows = _csv(out / "metrics.csv")                          # the sweep's own run: its final summary
    assert [r["step"] for r in sweep_rows] == ["final"] and float(sweep_rows[0]["runs"]) == 2
    client = MlflowClient(tracking_uri=(logs / "mlruns").as_uri())
    found = client.search_runs([client.get_experiment_by_name("compress").experiment_id])
    by_name = {r.info.run_name: r for r in found}
    assert set(by_name) == {"sw", *(f"sw/{n}" for n in runs)}
    assert all(r.info.status == "FINISHED" for r in found)
    member = by_name[f"sw/{runs[0]}"]
    assert member.data.params["family"] == "mlp" and member.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(member.info.run_id, "val_acc")] == [1, 2]
    sweep = by_name["sw"]
    assert sweep.data.params["sweep.families"] == "['mlp']" and sweep.data.metrics["final/runs"] == 2
    point = next(k for k in sweep.data.metrics if k.endswith("/val_acc"))
    assert point.startswith("final/mlp-2000-width-full") and 0 <= sweep.data.metrics[point] <= 1
    assert {"results.json", "results.csv"} <= {a.path for a in client.list_artifacts(sweep.info.run_id)}


def test_sweep_with_a_missing_package_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    out = tmp_path / "sw"
    assert main(["sweep", *SWEEP, "--out", str(out), "--log", "mlflow", "--log-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        'compress sweep: error: the mlflow logger needs the \'mlflow\' package, which is not installed: '
        'pip install "compress[track]"']
    assert not (out / "runs").exists() and not (tmp_path / "mlruns").exists()


def test_unknown_logger_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *TRAIN, "--out", str(tmp_path / "r"), "--log", "csv,wandb"])
    assert exc.value.code == 2
    assert "unknown logger 'wandb'; known: csv, tensorboard, mlflow" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "prune"])
def test_missing_package_is_one_line_before_the_data(trained, tmp_path, capsys, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)   # as if mlflow were not installed
    out = tmp_path / "r"
    args = (["train", *TRAIN] if command == "train" else ["prune", str(trained), "--ratio", "0.5"])
    assert main([*args, "--out", str(out), "--log", "csv,mlflow", "--log-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f'compress {command}: error: the mlflow logger needs the \'mlflow\' package, '
                                        'which is not installed: pip install "compress[track]"']
    assert not out.exists() and not (tmp_path / "mlruns").exists()


def test_a_log_dir_that_cannot_be_written_is_one_line(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    (tmp_path / "file").write_text("x")
    out = tmp_path / "r"
    assert main(["train", *TRAIN, "--out", str(out), "--log", "tensorboard", "--log-dir", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tensorboard folder" in err[0] and "is not writable" in err[0] and not out.exists()
