"""compress.train and the train / evaluate / predict commands: learning, determinism, run folders, CLI."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch
import torch.nn as nn

from compress import data, models
from compress.cli import main
from compress.train import TrainConfig, evaluate, fit, load_run, predict

FAST = dict(epochs=3, batch_size=64, lr=1e-2, threads=1, progress=None)


def _cfg(**kw) -> TrainConfig:
    settings = {k: v for k, v in FAST.items() if k != "progress"} | kw
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def bundle():
    return data.synthetic(360, num_classes=3, size=12, seed=1)


def _tiny(num_classes=3, seed=0) -> nn.Module:
    """A hand-written model without a model card."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(32, num_classes))


def _created(seed=0):
    torch.manual_seed(seed)
    return models.create("mlp", width_mult=0.125, num_classes=3, input_size=12)


def test_fit_learns_and_restores_best(bundle):
    run = fit(_tiny(), bundle, _cfg(epochs=4), progress=False)
    assert run.metrics["val_acc"] > 0.8 and run.metrics["test_acc"] > 0.8
    assert [r["epoch"] for r in run.history] == [1, 2, 3, 4]
    assert set(run.history[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    best = max(run.history, key=lambda r: r["val_acc"])
    assert run.metrics["best_epoch"] == best["epoch"]
    assert run.metrics["val_acc"] == pytest.approx(best["val_acc"])      # best weights are the ones kept
    assert not run.model.training
    assert evaluate(run.model, bundle.val)["acc"] == pytest.approx(best["val_acc"])


def test_same_seed_on_cpu_gives_identical_history(bundle):
    cfg = _cfg(epochs=2, erase_prob=0.5)
    a = fit(_tiny(), bundle, cfg, progress=False).history
    b = fit(_tiny(), bundle, cfg, progress=False).history
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a) == strip(b)
    c = fit(_tiny(), bundle, _cfg(epochs=2, erase_prob=0.5, seed=1), progress=False).history
    assert strip(a) != strip(c)


@pytest.mark.parametrize("settings", [dict(optimizer="sgd", schedule="onecycle", lr=0.05),
                                      dict(schedule="constant", ema_decay=0.9, label_smoothing=0.1),
                                      dict(augment=False, normalize=False)])
def test_options_train(bundle, settings):
    run = fit(_tiny(), bundle, _cfg(**settings), progress=False)
    assert run.metrics["val_acc"] > 0.5
    if settings.get("schedule") == "constant":
        assert {r["lr"] for r in run.history} == {settings.get("lr", 1e-2)}


def test_early_stopping(bundle):
    run = fit(_tiny(), bundle, _cfg(epochs=30, lr=1e-6, schedule="constant", patience=2), progress=False)
    assert run.metrics["epochs_run"] < 30
    assert run.metrics["epochs_run"] - run.metrics["best_epoch"] == 2


def test_run_folder_and_load_run(tmp_path, bundle):
    out = tmp_path / "run"
    run = fit(_created(), bundle, _cfg(), out=out, progress=False)
    for name in ("config.json", "history.json", "metrics.json", "environment.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]      # no staging folder left
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert set(state) == set(run.model.state_dict())
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["card"]["build_args"]["name"] == "mlp" and config["format"] == "compress.run/2"
    assert config["data"]["source"] == bundle.source
    env = json.loads((out / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["torch_threads"] >= 1

    back = load_run(out)
    assert back.path == out and back.config == run.config and back.history == run.history
    assert back.card == run.card == run.model.card
    assert back.metrics["test_acc"] == pytest.approx(run.metrics["test_acc"])
    reloaded = back.data()
    assert torch.equal(reloaded.val.x, bundle.val.x)
    assert back.evaluate(reloaded.test)["acc"] == pytest.approx(run.metrics["test_acc"])
    assert torch.equal(back.predict(bundle.test.x), run.predict(bundle.test.x))
    assert torch.equal(predict(run.model, bundle.test.x, bundle.normalizer), run.predict(bundle.test.x))

    with pytest.raises(FileExistsError, match="exists"):
        fit(_created(), bundle, _cfg(epochs=1), out=out, progress=False)
    fit(_created(), bundle, _cfg(epochs=1), out=out, overwrite=True, progress=False)
    assert len(json.loads((out / "history.json").read_text())) == 1


def test_load_run_reads_version_1_folders(tmp_path, bundle):
    run = fit(_created(), bundle, _cfg(epochs=1), out=tmp_path / "r", progress=False)
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    config["format"], config["model"]["build_args"] = "compress.run/1", config["model"].pop("card")["build_args"]
    config["data"]["options"]["image_size"] = config["data"]["options"].pop("input_size")   # 0.1's name
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    back = load_run(tmp_path / "r")
    assert back.card == run.card and torch.equal(back.data().val.x, bundle.val.x)


def test_load_run_reads_folders_whose_train_settings_held_bn_l1(tmp_path):
    """legacy/bn_l1_run was written by `compress train --bn-l1 1e-4` while TrainConfig held bn_l1."""
    import shutil
    from pathlib import Path

    legacy = Path(__file__).parent / "legacy" / "bn_l1_run"
    assert json.loads((legacy / "config.json").read_text())["train"]["bn_l1"] == 1e-4
    assert json.loads((legacy / "config.json").read_text())["train"]["num_threads"] is None   # now `threads`
    run = load_run(legacy)
    assert run.config.threads is None
    assert run.info["regularizer"] == {"name": "bn_l1", "weight": 1e-4}
    assert run.config == TrainConfig(epochs=1, device="cpu")
    assert run.evaluate(run.data().test)["loss"] == pytest.approx(run.metrics["test_loss"], rel=1e-6)
    copy = tmp_path / "run"
    shutil.copytree(legacy, copy)
    config = json.loads((copy / "config.json").read_text())
    config["train"]["bn_l1"] = 0.0                 # a weight of 0 was no regularizer
    (copy / "config.json").write_text(json.dumps(config))
    assert load_run(copy).info.get("regularizer") is None
    config["train"]["bn_l1"] = "strong"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config.json: train.bn_l1"):
        load_run(copy)


def test_a_regularizer_is_added_to_the_loss_and_recorded(tmp_path, bundle):
    seen = []

    def shrink_first_layer(model):
        seen.append(model)
        return 10.0 * model[1].weight.abs().sum()

    plain = fit(_tiny(), bundle, _cfg(epochs=1), progress=False)
    run = fit(_tiny(), bundle, _cfg(epochs=1), out=tmp_path / "r", regularizer=shrink_first_layer, progress=False)
    assert seen and all(m is run.model for m in seen)
    assert run.model[1].weight.abs().sum() < 0.5 * plain.model[1].weight.abs().sum()
    assert load_run(tmp_path / "r", model=_tiny()).info["regularizer"] == {
        "name": "test_a_regularizer_is_added_to_the_loss_and_recorded.<locals>.shrink_first_layer"}
    assert json.loads((tmp_path / "r" / "config.json").read_text())["regularizer"] is not None
    assert "bn_l1" not in json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    with pytest.raises(TypeError, match="regularizer"):
        fit(_tiny(), bundle, _cfg(epochs=1), regularizer=0.1, progress=False)


def test_load_run_without_a_card_asks_for_the_model(tmp_path, bundle):
    fit(_tiny(), bundle, _cfg(epochs=1), out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match=r"stores no model card: its model \(Sequential\).*pass the model: load_run\(path, model=\.\.\.\)"):
        load_run(tmp_path / "r")
    assert load_run(tmp_path / "r", model=_tiny()).evaluate(bundle)["n"] == len(bundle.test)
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "missing")


def test_bad_model_or_config_fails_before_any_folder(tmp_path, bundle):
    with pytest.raises(ValueError, match="outputs"):
        fit(_tiny(num_classes=5), bundle, _cfg(), out=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    for bad in (dict(optimizer="adam"), dict(schedule="step"), dict(epochs=0), dict(alpha=2), dict(device="tpu")):
        with pytest.raises(ValueError, match="TrainConfig"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"epochs": 1, "lr_max": 3})


def test_progress_one_line_per_epoch_off_a_terminal(bundle, capsys):
    fit(_tiny(), bundle, _cfg(epochs=2), progress=None)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch")]
    assert len(lines) == 2 and "val_acc" in lines[0]
    rows = []
    fit(_tiny(), bundle, _cfg(epochs=2), progress=rows.append)
    assert [r["epoch"] for r in rows] == [1, 2]


def test_progress_bar_on_a_terminal(bundle, capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fit(_tiny(), bundle, _cfg(epochs=2), progress=None)
    err = capsys.readouterr().err
    assert "2/2" in err and "epoch" in err and not any(ln.startswith("epoch 1/2") for ln in err.splitlines())


def test_distillation_from_a_model_and_a_run(tmp_path, bundle):
    teacher = fit(_created(), bundle, _cfg(), out=tmp_path / "teacher", progress=False)
    run = fit(_tiny(), bundle, _cfg(alpha=0.9, temperature=2.0), teacher=teacher.model, progress=False)
    assert run.metrics["val_acc"] > 0.5
    run = fit(_tiny(), bundle, _cfg(alpha=1.0, teacher=str(tmp_path / "teacher")), progress=False)
    assert run.metrics["val_acc"] > 0.5 and run.info["teacher"]["path"] == str(tmp_path / "teacher")
    with pytest.raises(TypeError, match="teacher"):
        fit(_tiny(), bundle, _cfg(), teacher=42, progress=False)


@pytest.mark.slow
def test_distillation_helps_a_tiny_student_on_default_data():
    """Hinton-style KD from a wide MLP to a 26K-param MLP on the default digits, mean over 3 seeds.

    Measured numbers are in the train report; the test accepts a tie within 1 point (binomial SE of a
    1,000-image test set is about 1.3 points at 85%).
    """
    b = data.load("default")
    torch.manual_seed(0)
    teacher = fit(models.create("mlp", width_mult=1.0, num_classes=10, input_size=28), b,
                  TrainConfig(epochs=8, lr=2e-3, threads=1), progress=False)
    scores = {"alone": [], "kd": []}
    for seed in range(3):
        for mode in scores:
            torch.manual_seed(seed)
            student = models.create("mlp", width_mult=0.0625, num_classes=10, input_size=28)
            cfg = TrainConfig(epochs=15, lr=5e-3, threads=1, seed=seed, alpha=0.5, temperature=2.0)
            run = fit(student, b, cfg, teacher=teacher if mode == "kd" else None, progress=False)
            scores[mode].append(run.metrics["test_acc"])
    assert statistics.mean(scores["kd"]) >= statistics.mean(scores["alone"]) - 0.01, scores


# ------------------------------------------------------------------------------------------------- CLI

def _fer_csv(path, n=28, header="label,feature", usage=False, side=8):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        px = " ".join(str(v) for v in rng.integers(0, 256, side * side))
        rows.append(f"{i % 7},{px}" + (",Training" if usage else "") if "label" in header or "emotion" in header
                    else f"{i},{px}")
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_cli_train_evaluate_predict(tmp_path, capsys):
    out = tmp_path / "runs" / "cnn"
    args = ["train", "--model", "cnn", "--width", "0.25", "--data", "synthetic:n=240,classes=3,size=12",
            "--epochs", "2", "--lr", "0.01", "--batch-size", "64", "--threads", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    assert "run folder" in capsys.readouterr().out
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    capsys.readouterr()

    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and 0 <= result["acc"] <= 1 and result["n"] == 48

    rng = np.random.default_rng(1)
    unlabeled = tmp_path / "test.csv"
    unlabeled.write_text("id,feature\n" + "".join(f"{7 + i}," + " ".join(map(str, rng.integers(0, 256, 144)))
                                                  + "\n" for i in range(4)))
    sub = tmp_path / "submission.csv"
    assert main(["predict", str(out), "--data", str(unlabeled), "--out", str(sub)]) == 0
    lines = sub.read_text().splitlines()
    assert lines[0] == "id,label" and [ln.split(",")[0] for ln in lines[1:]] == ["7", "8", "9", "10"]
    assert all(0 <= int(ln.split(",")[1]) < 3 for ln in lines[1:])


def test_cli_bad_data_leaves_no_folder(tmp_path, capsys):
    bad = _fer_csv(tmp_path / "train.csv")
    text = bad.read_text().splitlines()
    text[3] = "2,1 2 3"
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "run"
    args = ["train", "--model", "mlp", "--width", "0.125", "--data", str(bad), "--epochs", "1", "--out", str(out),
            "--threads", "1", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "train.csv: line 4: wrong pixel count" in err and "Traceback" not in err
    assert not out.exists()
    assert main(args + ["--skip-bad-rows"]) == 0
    assert "skipped 1 bad rows" in capsys.readouterr().err
    assert (out / "checkpoint.pt").exists()


def test_recalibrate_batchnorm_estimates_statistics_of_the_current_weights():
    import torch
    from torch import nn

    from compress.train import recalibrate_batchnorm

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    model[1].running_mean.fill_(100.0)           # stale statistics, as after fast training
    model[1].running_var.fill_(1e-4)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    transform = lambda t: t.float() / 255  # noqa: E731
    recalibrate_batchnorm(model, (transform(x[i:i + 16]) for i in range(0, 64, 16)))
    with torch.no_grad():
        feats = model[0](transform(x))
    assert torch.allclose(model[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert model[1].momentum == 0.1 and not model.training
    with torch.no_grad():   # eval output now matches train-mode output on the same data
        model.eval()
        ev = model(transform(x))
        model.train()
        tr = model(transform(x))
    assert (ev - tr).abs().max() < 0.05


def test_settings_renamed_since_a_file_was_written_still_read():
    """TrainConfig.num_threads became threads (the CLI's --threads, Budget.threads, measure(threads=))."""
    assert TrainConfig.from_dict({"num_threads": 2}).threads == 2
    assert TrainConfig.from_dict({"num_threads": 2, "threads": 3}).threads == 3   # the new name wins
    with pytest.raises(TypeError):
        TrainConfig(num_threads=2)   # the constructor takes only the new name
