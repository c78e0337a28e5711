"""compress.train.fit_many: K seeds trained as one stacked model, each member as if trained alone."""

import dataclasses
import json
import re

import pytest
import torch

from compress import data, models
from compress.cli import main
from compress.train import TrainConfig, fit, fit_many, load_run


@pytest.fixture(scope="module")
def bundle():
    return data.synthetic(200, num_classes=3, size=12, seed=1)


def _model(name, seed):
    torch.manual_seed(seed)
    return models.create(name, width_mult=0.25, num_classes=3, input_size=12)


@pytest.mark.parametrize("name, settings", [
    ("mlp", dict(ema_decay=0.9)),
    ("cnn", dict(erase_prob=0.5)),
    ("cnn", dict(augment=False, normalize=False, bn_recalibrate=0)),
    ("cnn", dict(optimizer="sgd", lr=1e-3, channels_last=False)),
])
def test_first_steps_match_each_seed_trained_alone(bundle, name, settings):
    """One epoch (three steps, BatchNorm recalibration, validation) of three seeds together vs each alone."""
    cfg = TrainConfig(epochs=1, batch_size=64, threads=1, **settings)
    seeds = [0, 3, 7]
    runs = fit_many([_model(name, s) for s in seeds], bundle, cfg, seeds=seeds, progress=False)
    for seed, run in zip(seeds, runs):
        alone = fit(_model(name, seed), bundle, dataclasses.replace(cfg, seed=seed), progress=False)
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert run.history[0][key] == pytest.approx(alone.history[0][key], abs=1e-3), key
        ours, theirs = run.model.state_dict(), alone.model.state_dict()
        for key in theirs:
            if re.fullmatch(r"blocks\.\d+\.(fc\.bias|bn\.running_mean)", key):
                # a bias right before BatchNorm has a true gradient of zero: Adam turns float noise of 1e-9 into
                # steps of lr size in either trainer, and the running mean follows the bias; the BatchNorm output
                # (bias minus its mean) is unaffected
                continue
            assert torch.allclose(ours[key].float(), theirs[key].float(), atol=1e-3, rtol=1e-2), key
        assert run.metrics["members"] == 3 and run.config.seed == seed


def test_members_stop_early_on_their_own(bundle):
    cfg = TrainConfig(epochs=6, batch_size=64, threads=1, patience=1, min_delta=0.5)
    runs = fit_many([_model("mlp", s) for s in (0, 1)], bundle, cfg, seeds=[0, 1], progress=False)
    for run in runs:
        assert len(run.history) == 2 and run.metrics["stopped_early"] and run.metrics["converged"]


def test_one_run_folder_per_member_and_distillation(bundle, tmp_path):
    teacher = fit(_model("cnn", 9), bundle, TrainConfig(epochs=2, batch_size=64, threads=1), progress=False)
    rows = []
    outs = [tmp_path / "a", tmp_path / "b"]
    cfg = TrainConfig(epochs=2, batch_size=64, threads=1, alpha=0.7)
    runs = fit_many([_model("mlp", 0), _model("mlp", 1)], bundle, cfg, seeds=[4, 5], outs=outs, teacher=teacher,
                    progress=rows.append)
    assert sorted({r["seed"] for r in rows}) == [4, 5] and len(rows) == 4
    for run, out, seed in zip(runs, outs, (4, 5)):
        again = load_run(out)
        assert again.config.seed == seed and json.loads((out / "config.json").read_text())["teacher"]
        x = bundle.test.x[:16]
        assert torch.equal(again.predict(x), run.predict(x))
    alone = fit(_model("mlp", 0), bundle, dataclasses.replace(cfg, seed=4), teacher=teacher, progress=False)
    assert runs[0].history[0]["train_loss"] == pytest.approx(alone.history[0]["train_loss"], abs=1e-4)


@pytest.mark.parametrize("kw, error", [
    (dict(models=[]), ValueError), (dict(seeds=[0]), ValueError), (dict(seeds=[1, 1]), ValueError),
    (dict(outs=["x", "x"]), ValueError), (dict(models="same"), ValueError), (dict(models=[1, 2]), TypeError),
])
def test_bad_input(bundle, kw, error):
    m = _model("mlp", 0)
    given = {"models": [m, _model("mlp", 1)], **kw}
    if given["models"] == "same":
        given["models"] = [m, m]
    with pytest.raises(error):
        fit_many(given.pop("models"), bundle, TrainConfig(epochs=1), progress=False, **given)


def test_cli_train_seeds_writes_a_folder_per_seed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp", "--width", "0.25", "--data", "synthetic:n=120,classes=3,size=12",
                 "--epochs", "1", "--seeds", "2", "--out", str(out)]) == 0
    assert load_run(tmp_path / "run-s0").config.seed == 0 and load_run(tmp_path / "run-s1").config.seed == 1
