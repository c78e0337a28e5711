"""Every command's output paths are checked before any work (issue 16, class 4 and 5): never an input, an existing
file only with --overwrite, a read-only folder or a full disk end in one line, exit 2, nothing left behind."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from compress.cli import main

DATA = "synthetic:n=120,classes=3,size=12"
TRAIN = ["train", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("outs") / "run"
    assert main([*TRAIN, "--data", DATA, "--out", str(out)]) == 0
    return out


def _fails(capsys, argv, *words):
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    assert status == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"compress {argv[0]}: error:"), line
    for w in words:
        assert w in line, line
    return line


def _npz(path):
    np.savez(path, x=np.zeros((6, 12, 12), np.uint8), y=np.array([0, 1, 2, 0, 1, 2]))
    return path


def test_train_never_replaces_a_folder_holding_its_data_or_its_teacher(capsys, tmp_path, run_dir):
    folder = tmp_path / "r"
    folder.mkdir()
    data = _npz(folder / "d.npz")
    _fails(capsys, [*TRAIN, "--data", str(data), "--out", str(folder), "--overwrite"], "input", "d.npz")
    assert data.exists()
    _fails(capsys, [*TRAIN, "--data", DATA, "--teacher", str(run_dir), "--out", str(run_dir), "--overwrite"], "input")
    assert (run_dir / "checkpoint.pt").exists()
    _fails(capsys, [*TRAIN, "--data", DATA, "--out", str(data)], "is a file")
    _fails(capsys, [*TRAIN, "--data", DATA, "--out", str(folder)], "--overwrite")


def test_explain_and_report_never_write_into_their_input(capsys, tmp_path, run_dir):
    _fails(capsys, ["explain", str(run_dir), "--out", str(run_dir)], "input")
    assert not (run_dir / "explain.md").exists()
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    _fails(capsys, ["report", str(sweep), "--out", str(sweep)], "input")


def test_sweep_and_study_folders(capsys, tmp_path):
    data = _npz(tmp_path / "d.npz")
    _fails(capsys, ["sweep", "--data", str(data), "--out", str(data)], "is a file")
    _fails(capsys, ["study", "--data", DATA, "--out", str(tmp_path / "s"), "--report", str(tmp_path / "s")],
           "--report", "input")
    assert not (tmp_path / "s").exists()


def test_bench_json_needs_overwrite_and_is_never_the_target(capsys, tmp_path, run_dir):
    existing = tmp_path / "old.json"
    existing.write_text("keep")
    _fails(capsys, ["bench", "mlp", "--json", str(existing)], "--overwrite")
    assert existing.read_text() == "keep"
    ckpt = run_dir / "checkpoint.pt"
    before = ckpt.read_bytes()
    _fails(capsys, ["bench", str(ckpt), "--json", str(ckpt), "--overwrite"], "input")
    assert ckpt.read_bytes() == before


def test_fit_budget_needs_overwrite_for_a_folder_with_results(capsys, tmp_path):
    out = tmp_path / "fb"
    out.mkdir()
    (out / "table.json").write_text("{}")
    _fails(capsys, ["fit-budget", "--family", "mlp", "--max-bytes", "20k", "--data", DATA, "--out", str(out)],
           "--overwrite")
    data = _npz(out / "d.npz")
    _fails(capsys, ["fit-budget", "--family", "mlp", "--max-bytes", "20k", "--data", str(data), "--out", str(out),
                    "--overwrite"], "input")
    assert (out / "table.json").read_text() == "{}"


# ------------------------------------------------------------------ read-only folders and full disks
@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions (the mount test below covers it)")
def test_a_read_only_out_folder_is_refused_before_training(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _fails(capsys, [*TRAIN, "--data", DATA, "--out", str(ro / "r")], "not writable")
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_a_full_disk_while_writing_the_run_folder(capsys, tmp_path, monkeypatch):
    """ENOSPC from torch.save (the public call that writes checkpoint.pt): one line, no run folder, no staging."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    _fails(capsys, [*TRAIN, "--data", DATA, "--out", str(tmp_path / "r")], "No space left on device")
    assert list(tmp_path.iterdir()) == []


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private user + mount namespace, where it may mount a tmpfs."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare not available")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("user namespaces not available")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable})


def _train_cmd(out: str) -> str:
    return f'"$PYTHON" -m compress train --model mlp --data {DATA} --epochs 1 --device cpu --quiet --out {out}'


def test_a_real_full_disk_and_a_read_only_mount(tmp_path):
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    proc = _in_namespace(
        f"mount -t tmpfs -o size=16k tmpfs {full} && mount -t tmpfs -o ro tmpfs {ro} || exit 99\n"
        f"{_train_cmd(full / 'r')}; echo \"status $?\"; ls -A {full}; echo ---\n"
        f"{_train_cmd(ro / 'r')}; echo \"status $?\"; ls -A {ro}")
    if proc.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    full_part, ro_part = proc.stdout.split("---")
    assert full_part.split() == ["status", "2"], proc.stdout + proc.stderr    # nothing left behind on the disk
    assert ro_part.split() == ["status", "2"], proc.stdout + proc.stderr
    errors = [l for l in proc.stderr.splitlines() if l.startswith("compress train: error:")]
    assert len(errors) == 2 and "No space left on device" in errors[0] and "not writable" in errors[1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_prune_never_replaces_its_source_run(capsys, run_dir):
    before = (run_dir / "checkpoint.pt").read_bytes()
    _fails(capsys, ["prune", str(run_dir), "--out", str(run_dir), "--overwrite"], "input")
    _fails(capsys, ["prune", str(run_dir), "--out", str(run_dir.parent), "--overwrite"], "input")
    assert (run_dir / "checkpoint.pt").read_bytes() == before
