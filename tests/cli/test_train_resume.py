"""compress train --resume: a `compress train` killed (SIGKILL) after a random epoch's line, resumed with the same
command plus --resume, writes the folder an uninterrupted run writes; bad --resume input is one line, exit 2, and
nothing is overwritten."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys

import pytest
import torch

from compress.cli import main
from compress.train.resume import resume_file, resume_folder

EPOCHS = 30
ARGS = ["train", "--model", "cnn", "--width", "0.25", "--data", "synthetic:n=600,classes=3,size=12",
        "--epochs", str(EPOCHS), "--batch-size", "64", "--threads", "1", "--dropout", "0.2", "--erase", "0.5",
        "--ema", "0.9"]


def _killed_after_epoch(args: list[str], epoch: int) -> None:
    """Run ``compress`` in a process, SIGKILL it once it has printed ``epoch``'s line (it may be a few further)."""
    # one thread from the start, as this test process: the data's statistics are summed as here
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "compress", *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:
            if re.search(rf"(^|  )epoch {epoch}/", line):   # "epoch 3/30  ..." or "seed 0  epoch 3/12  ..."
                proc.kill()
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)


def _same_run(a, b):
    rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in json.loads((d / "history.json").read_text())]
            for d in (a, b)]
    assert rows[0] == rows[1]
    sa, sb = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (a, b))
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    info = [json.loads((d / "config.json").read_text()) for d in (a, b)]
    assert info[0]["train"] == info[1]["train"] and info[0]["model"] == info[1]["model"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    assert main([*ARGS, "--out", str(out), "--quiet"]) == 0
    return out


def test_a_killed_train_resumes_to_the_uninterrupted_run(uninterrupted, tmp_path, capsys):
    epoch = random.randint(1, 5)
    out = tmp_path / "run"
    _killed_after_epoch([*ARGS, "--out", str(out)], epoch)
    assert not out.exists() and resume_file(out).is_file(), epoch
    assert main([*ARGS, "--out", str(out)]) == 2      # a leftover state: --resume or --overwrite
    assert "holds the resume state of a run that did not finish: pass --resume" in capsys.readouterr().err
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    done = int(err.split("resuming after epoch ")[1].split("/")[0])
    assert epoch <= done < EPOCHS and f"\nepoch {done + 1}/{EPOCHS} " in err, (epoch, done)
    assert not resume_folder(out).exists() and (out / "curves.png").exists()
    _same_run(uninterrupted, out)


def test_fused_seeds_resume(tmp_path, capsys):
    args = [*ARGS[:-2], "--epochs", "12", "--seeds", "2", "--patience", "3"]
    full, out = tmp_path / "full", tmp_path / "run"
    assert main([*args, "--out", str(full), "--quiet"]) == 0
    _killed_after_epoch([*args, "--out", str(out), "--seed", "0"], random.randint(1, 3))
    assert resume_file(tmp_path / "run-s0").is_file()
    assert main([*args, "--out", str(out), "--seed", "0", "--resume", "--quiet"]) == 0
    for seed in (0, 1):
        _same_run(tmp_path / f"full-s{seed}", tmp_path / f"run-s{seed}")


def test_bad_resume_is_one_line_exit_2_and_overwrites_nothing(uninterrupted, tmp_path, capsys):
    def refused(args, message):
        assert main(args) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("compress train: error: ")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err

    before = (uninterrupted / "checkpoint.pt").read_bytes()
    refused([*ARGS, "--out", str(uninterrupted), "--resume"],
            f"{uninterrupted} has no resume state: it finished or never started")
    refused([*ARGS, "--out", str(tmp_path / "never"), "--resume"], "has no resume state")
    refused([*ARGS, "--out", str(uninterrupted), "--resume", "--overwrite"], "--resume continues a run and --overwrite")
    assert (uninterrupted / "checkpoint.pt").read_bytes() == before

    out = tmp_path / "run"
    _killed_after_epoch([*ARGS, "--out", str(out)], 1)
    saved = resume_file(out).read_bytes()
    refused([*ARGS, "--out", str(out), "--resume", "--lr", "0.1"], "was started with another config (differs in: train.lr)")
    refused([*ARGS, "--out", str(out), "--resume", "--width", "0.5"], "(differs in: model.card, model.param_count)")
    refused([*ARGS, "--out", str(out), "--resume", "--seeds", "2"], "run-s0 has no resume state")
    assert resume_file(out).read_bytes() == saved and not out.exists()
    resume_file(out).write_bytes(saved[:1000])
    refused([*ARGS, "--out", str(out), "--resume"], f"{resume_file(out)}: not a readable resume state")
    assert resume_file(out).read_bytes() == saved[:1000] and not out.exists()
