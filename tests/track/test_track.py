"""compress.track: what fit logs, read back with each library's own reader (TensorBoard's EventAccumulator, MLflow's
client, the csv module); loggers that fail mid-run are dropped with one warning; bad names, missing packages and
folders that cannot be written are refused before anything is written."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch

from compress import data, models
from compress.track import (CsvLogger, MissingExtra, MLflowLogger, TensorBoardLogger, Tracker, check_names,
                            make_loggers)
from compress.train import TrainConfig, fit

CONFIG = TrainConfig(epochs=2, batch_size=64, lr=1e-2, threads=1, augment=False)


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic:n=120,classes=3,size=12")


def _model():
    torch.manual_seed(0)
    return models.create("mlp", width_mult=0.125, num_classes=3, input_size=12)


def test_csv_logger_reads_back_with_the_csv_module(bundle, tmp_path):
    run = fit(_model(), bundle, CONFIG, out=tmp_path / "run", progress=False,
              loggers=[CsvLogger(tmp_path / "run")])
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["1", "2", "final"]
    for row, hist in zip(rows, run.history):
        assert float(row["train_loss"]) == pytest.approx(hist["train_loss"])
        assert float(row["val_acc"]) == pytest.approx(hist["val_acc"])
    assert float(rows[-1]["val_acc"]) == pytest.approx(run.metrics["val_acc"])
    assert float(rows[-1]["test_acc"]) == pytest.approx(run.metrics["test_acc"])


def test_tensorboard_logger_reads_back_with_event_accumulator(bundle, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path / "runs")
    run = fit(_model(), bundle, CONFIG, out=tmp_path / "run", progress=False, loggers=[logger])
    ea = EventAccumulator(str(tmp_path / "runs" / "run"), size_guidance={"images": 0, "tensors": 0})
    ea.Reload()
    val = ea.Scalars("val_acc")
    assert [e.step for e in val] == [1, 2]
    assert [e.value for e in val] == pytest.approx([h["val_acc"] for h in run.history])
    assert [e.step for e in ea.Scalars("train_loss")] == [1, 2]
    assert ea.Scalars("final/test_acc")[-1].value == pytest.approx(run.metrics["test_acc"])
    params = ea.Tensors("params/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| train.epochs | 2 |" in params and "| model.build_args.name | mlp |" in params
    assert "_hparams_/experiment" in ea.PluginTagToContent("hparams")   # the HPARAMS tab
    artifacts = [t.tensor_proto.string_val[0].decode() for t in ea.Tensors("artifacts/text_summary")]
    assert any(a.endswith("checkpoint.pt") for a in artifacts)


def test_tensorboard_logs_png_figures_as_images(tmp_path):
    pytest.importorskip("tensorboard")
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Image.new("RGB", (8, 6), (255, 0, 0)).save(tmp_path / "curves.png")
    logger = TensorBoardLogger(tmp_path / "runs")
    logger.start("r", {"a": 1})
    logger.log_metrics(1, {"x": 0.5})
    logger.log_artifact(tmp_path / "curves.png")
    logger.finish({"x": 0.5})
    ea = EventAccumulator(str(tmp_path / "runs" / "r"), size_guidance={"images": 0})
    ea.Reload()
    image = ea.Images("figures/curves")[0]
    assert (image.width, image.height) == (8, 6)


def test_mlflow_logger_reads_back_with_mlflow_client(bundle, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(tmp_path / "mlruns", experiment="tests")
    run = fit(_model(), bundle, CONFIG, out=tmp_path / "run", progress=False, loggers=[logger])
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    got = client.get_run(logger.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "run"
    assert got.data.params["train.epochs"] == "2" and got.data.params["model.build_args.name"] == "mlp"
    history = client.get_metric_history(logger.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([h["val_acc"] for h in run.history])
    assert got.data.metrics["final/test_acc"] == pytest.approx(run.metrics["test_acc"])
    names = {a.path for a in client.list_artifacts(logger.run_id)}
    assert {"config.json", "metrics.json", "history.json", "checkpoint.pt"} <= names


def test_a_failing_logger_is_reported_once_and_dropped(bundle, tmp_path, capsys):
    class Broken:
        name = "broken"

        def start(self, run_name, params):
            pass

        def log_metrics(self, step, metrics):
            raise OSError("No space left on device")

        def log_artifact(self, path):
            raise AssertionError("dropped loggers are never called again")

        def finish(self, final_metrics):
            raise AssertionError("dropped loggers are never called again")

    kept = CsvLogger(tmp_path / "csv")
    run = fit(_model(), bundle, CONFIG, progress=False, loggers=[Broken(), kept])
    err = capsys.readouterr().err
    assert err.count("the broken logger failed (No space left on device); it is off for the rest of this run") == 1
    assert run.metrics["epochs_run"] == 2 and [r["step"] for r in kept.rows] == [1, 2, "final"]


def test_mlflow_store_lost_mid_run_leaves_the_run_going(bundle, tmp_path, capsys):
    pytest.importorskip("mlflow")
    import shutil

    store = tmp_path / "mlruns"
    logger = MLflowLogger(store)

    def block_the_store(row):   # after the first epoch, the store becomes a file: every write fails
        if row["epoch"] == 1:
            shutil.rmtree(store)
            store.write_text("not a folder")

    run = fit(_model(), bundle, CONFIG, out=tmp_path / "run", progress=block_the_store, loggers=[logger])
    err = capsys.readouterr().err
    assert err.count("the mlflow logger failed") == 1
    assert run.metrics["epochs_run"] == 2 and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_steps_go_on_across_fits_on_one_open_tracker(bundle, tmp_path):
    logger = CsvLogger(tmp_path)
    tracker = Tracker([logger], keep_open=True)
    tracker.start("two", {})
    model = _model()
    fit(model, bundle, CONFIG, progress=False, loggers=tracker)
    fit(model, bundle, CONFIG, progress=False, loggers=tracker)
    assert not tracker.finished and [r["step"] for r in logger.rows] == [1, 2, 3, 4]
    tracker.finish({"val_acc": 1.0})
    assert logger.rows[-1] == {"step": "final", "val_acc": 1.0}


def test_fit_many_needs_one_loggers_entry_per_model(bundle, tmp_path):
    from compress.train import fit_many

    with pytest.raises(ValueError, match="one entry each"):
        fit_many([_model(), _model()], bundle, CONFIG, loggers=[[CsvLogger(tmp_path)]], progress=False)


def test_unknown_logger_lists_the_known_ones():
    assert check_names("tensorboard, csv,csv") == ["tensorboard", "csv"]
    with pytest.raises(ValueError, match="unknown logger 'wandb'; known: csv, tensorboard, mlflow"):
        make_loggers("csv,wandb", ".")
    with pytest.raises(TypeError, match="no compress.track.Logger"):
        Tracker([object()])


@pytest.mark.parametrize("name,module", [("tensorboard", "torch.utils.tensorboard"), ("mlflow", "mlflow.tracking")])
def test_a_missing_package_names_the_extra(tmp_path, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)   # import fails as if the package were not installed
    with pytest.raises(MissingExtra, match=r'needs the .* package, which is not installed: pip install "compress\[track\]"'):
        make_loggers(name, tmp_path, log_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["tensorboard", "mlflow"])
def test_a_log_folder_that_cannot_be_written_is_refused(tmp_path, name):
    pytest.importorskip(name)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not writable"):
        make_loggers(name, tmp_path, log_dir=tmp_path / "file")


def test_csv_needs_a_folder_and_no_file(tmp_path):
    with pytest.raises(ValueError, match="needs a folder"):
        make_loggers("csv", None)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        CsvLogger(tmp_path / "f")


def test_importing_compress_imports_neither_tensorboard_nor_mlflow():
    code = ("import sys, compress, compress.track, compress.train; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorboard', 'mlflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
