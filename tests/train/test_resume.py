"""fit(..., resume=True) and fit_many(..., resume=True): a run stopped after any epoch, resumed, ends with the
history and the checkpoint of the uninterrupted run; foreign, missing and corrupted resume states are refused."""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from compress import data, models
from compress.train import TrainConfig, fit, fit_many
from compress.train.resume import resume_file, resume_folder

EPOCHS = 5


@pytest.fixture(scope="module")
def bundle():
    return data.synthetic(200, num_classes=3, size=12, seed=1)


class Stop(Exception):
    """What the test seam raises: the progress callback is called after the epoch's resume state is saved."""


def _model(seed=0, name="cnn", width=0.25):
    torch.manual_seed(seed)
    return models.create(name, width_mult=width, num_classes=3, input_size=12, dropout=0.2)


def _stop_after(epoch):
    def progress(row):
        if row["epoch"] == epoch:
            raise Stop
    return progress


def _history(run_dir):
    return [{k: v for k, v in row.items() if k != "seconds"}
            for row in json.loads((run_dir / "history.json").read_text())]


def _same_run(a, b):
    assert _history(a) == _history(b)
    sa, sb = torch.load(a / "checkpoint.pt", weights_only=True), torch.load(b / "checkpoint.pt", weights_only=True)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    wall = {"train_seconds", "train_images_per_s"}
    assert {k: v for k, v in ma.items() if k not in wall} == {k: v for k, v in mb.items() if k not in wall}


SETTINGS = {
    # dropout (global RNG), augmentation with erasing (generators), EMA, one-cycle schedule, BatchNorm recalibration
    "ema-onecycle": dict(ema_decay=0.9, schedule="onecycle", erase_prob=0.5),
    # SGD momentum, fractional epochs, patience counters carried over
    "sgd-fraction": dict(optimizer="sgd", lr=0.05, epochs=4.5, patience=3, min_delta=0.2, bn_recalibrate=0),
    # early stopping after epoch 3
    "stopped-early": dict(patience=2, min_delta=0.5, augment=False, channels_last=False),
}


@pytest.fixture(scope="module")
def uninterrupted(bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    for name, settings in SETTINGS.items():
        fit(_model(), bundle, _cfg(**settings), out=root / name, progress=False)
    return root


def _cfg(**kw):
    return TrainConfig(**({"epochs": EPOCHS, "batch_size": 64, "threads": 1} | kw))


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("stop", [1, 3])
def test_stopped_after_an_epoch_resumes_to_the_uninterrupted_run(bundle, uninterrupted, tmp_path, name, stop):
    cfg, out = _cfg(**SETTINGS[name]), tmp_path / "run"
    with pytest.raises(Stop):
        fit(_model(), bundle, cfg, out=out, progress=_stop_after(stop))
    assert not out.exists() and resume_file(out).is_file()
    rows = []
    run = fit(_model(seed=5), bundle, cfg, out=out, resume=True, progress=rows.append)   # other initial weights
    assert [r["epoch"] for r in rows[:1]] in ([stop + 1], [])                       # the stopped run's own
    assert run.path == out and not resume_folder(out).exists()
    _same_run(uninterrupted / name, out)


def test_stopped_after_its_last_epoch_only_writes_the_folder(bundle, uninterrupted, tmp_path):
    cfg, out = _cfg(**SETTINGS["ema-onecycle"]), tmp_path / "run"
    with pytest.raises(Stop):
        fit(_model(), bundle, cfg, out=out, progress=_stop_after(EPOCHS))
    rows = []
    fit(_model(), bundle, cfg, out=out, resume=True, progress=rows.append)
    assert rows == []
    _same_run(uninterrupted / "ema-onecycle", out)


def test_a_process_killed_at_a_random_epoch_resumes(bundle, uninterrupted, tmp_path):
    """SIGKILL from inside the progress callback: after the epoch's line, as a user's kill would land."""
    epoch = random.randint(1, EPOCHS - 1)
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from compress import data, models
        from compress.train import TrainConfig, fit
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = models.create("cnn", width_mult=0.25, num_classes=3, input_size=12, dropout=0.2)
        def progress(row):
            if row["epoch"] == {epoch}:
                os.kill(os.getpid(), signal.SIGKILL)
        fit(model, data.synthetic(200, num_classes=3, size=12, seed=1),
            TrainConfig(epochs={EPOCHS}, batch_size=64, threads=1, **{SETTINGS["ema-onecycle"]!r}),
            out={str(out)!r}, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (epoch, proc.stderr[-2000:])
    assert not out.exists() and resume_file(out).is_file()
    fit(_model(), bundle, _cfg(**SETTINGS["ema-onecycle"]), out=out, resume=True, progress=False)
    _same_run(uninterrupted / "ema-onecycle", out)


def test_fused_members_resume_each_as_uninterrupted(bundle, tmp_path):
    cfg = _cfg(patience=1, min_delta=0.5, erase_prob=0.5, ema_decay=0.9)   # members stop on their own
    seeds = [0, 4]
    full = [tmp_path / f"full-s{s}" for s in seeds]
    fit_many([_model(s) for s in seeds], bundle, cfg, seeds=seeds, outs=full, progress=False)
    outs = [tmp_path / f"r-s{s}" for s in seeds]

    def stop(row):
        if row["epoch"] == 1 and row["seed"] == seeds[-1]:
            raise Stop
    with pytest.raises(Stop):
        fit_many([_model(s) for s in seeds], bundle, cfg, seeds=seeds, outs=outs, progress=stop)
    assert resume_file(outs[0]).is_file() and not resume_folder(outs[1]).exists()
    fit_many([_model(s) for s in seeds], bundle, cfg, seeds=seeds, outs=outs, resume=True, progress=False)
    for a, b in zip(full, outs):
        _same_run(a, b)
    assert not resume_folder(outs[0]).exists()


def _stopped(bundle, out, cfg):
    with pytest.raises(Stop):
        fit(_model(), bundle, cfg, out=out, progress=_stop_after(2))
    return resume_file(out).read_bytes()


def test_another_config_or_model_or_data_is_refused_naming_what_differs(bundle, tmp_path):
    cfg, out = _cfg(), tmp_path / "run"
    saved = _stopped(bundle, out, cfg)
    for kwargs, differs in [
        (dict(config=_cfg(lr=0.1)), "train.lr)"),
        (dict(config=_cfg(seed=3)), "seeds)"),
        (dict(model=_model(width=0.5)), "model.card, model.param_count)"),
        (dict(data=data.synthetic(200, num_classes=3, size=12, seed=2)), "data.sha256, normalizer.mean"),
    ]:
        args = dict(model=_model(), data=bundle, config=cfg) | kwargs
        with pytest.raises(ValueError, match=re.escape(f"started with another config (differs in: {differs}")):
            fit(args["model"], args["data"], args["config"], out=out, resume=True, progress=False)
    assert resume_file(out).read_bytes() == saved and not out.exists()


def test_no_state_a_corrupted_one_and_resume_with_overwrite_are_refused(bundle, tmp_path):
    cfg, out = _cfg(), tmp_path / "run"
    with pytest.raises(ValueError, match=r"run has no resume state: it finished or never started"):
        fit(_model(), bundle, cfg, out=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="needs out="):
        fit(_model(), bundle, cfg, resume=True, progress=False)
    saved = _stopped(bundle, out, cfg)
    with pytest.raises(ValueError, match="--resume continues a run and --overwrite starts it over"):
        fit(_model(), bundle, cfg, out=out, resume=True, overwrite=True, progress=False)
    f = resume_file(out)
    for damaged in (saved[: len(saved) // 2], b"not a torch file"):
        f.write_bytes(damaged)
        with pytest.raises(ValueError, match=f"{f}: not a readable resume state"):
            fit(_model(), bundle, cfg, out=out, resume=True, progress=False)
        assert f.read_bytes() == damaged and not out.exists()
    buf = io.BytesIO()
    torch.save({"format": "compress.resume/1", "identity": "{}", "loop": {}}, buf)
    f.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="started with another config"):
        fit(_model(), bundle, cfg, out=out, resume=True, progress=False)


def test_a_state_that_does_not_fit_is_refused_naming_the_file(bundle, tmp_path):
    cfg, out = _cfg(), tmp_path / "run"
    _stopped(bundle, out, cfg)
    f = resume_file(out)
    state = torch.load(f, weights_only=True)
    del state["loop"]["optimizer"]
    buf = io.BytesIO()
    torch.save(state, buf)
    f.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match=f"{f}: does not fit this run"):
        fit(_model(), bundle, cfg, out=out, resume=True, progress=False)
    assert not out.exists()


def test_a_leftover_state_needs_resume_or_overwrite(bundle, tmp_path):
    cfg, out = _cfg(epochs=2), tmp_path / "run"
    _stopped(bundle, out, _cfg(epochs=3))
    with pytest.raises(FileExistsError, match="holds the resume state of a run that did not finish"):
        fit(_model(), bundle, cfg, out=out, progress=False)
    run = fit(_model(), bundle, cfg, out=out, overwrite=True, progress=False)   # starts over
    assert len(run.history) == 2 and not resume_folder(out).exists()


def test_what_cannot_resume_is_refused_in_one_line(bundle, tmp_path):
    class Plain(nn.Module):   # no stacking rule: fit_many trains such members one after another
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(144, 3)

        def forward(self, x):
            return self.fc(x.flatten(1))

    outs = [tmp_path / "a", tmp_path / "b"]
    resume_folder(outs[0]).mkdir()
    resume_file(outs[0]).write_bytes(b"")
    with pytest.raises(ValueError, match="cannot be stacked, so its 2 seeds train one after another"):
        fit_many([Plain(), Plain()], bundle, _cfg(), seeds=[0, 1], outs=outs, resume=True, progress=False)
    assert resume_file(outs[0]).read_bytes() == b"" and not os.path.exists(outs[1])
