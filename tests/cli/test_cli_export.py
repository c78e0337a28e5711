"""``compress export`` and ``compress fit-budget`` on a tiny run trained on synthetic data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from compress.cli import main
from compress.export import artifact as A
from compress.export import choice as C


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=200, epochs=1)


def test_export_one_codec(run_dir, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", str(run_dir), "--codec", "int8", "--fold-bn", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "int8+fold" in text and f"{os.path.getsize(out):,} bytes" in text
    A.load(out)
    meta = A.read(out)[0]["meta"]
    assert meta["class_names"] == ["class0", "class1", "class2"] and "mean" in meta["normalizer"]


def test_export_within_budget(run_dir, tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["export", str(run_dir), "--max-bytes", "6k", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert os.path.getsize(out) <= 6000 and summary["breakdown"]["size_bytes"] == os.path.getsize(out)
    rows = summary["rows"]
    assert [r["candidate"] for r in rows] == list(C.DEFAULT_CANDIDATES)
    chosen = [r for r in rows if r["chosen"]]
    assert len(chosen) == 1 and chosen[0]["val_acc"] == max(r["val_acc"] for r in rows if r["fits"])


def test_export_nothing_fits(run_dir, tmp_path, capsys):
    status = main(["export", str(run_dir), "--max-bytes", "500", "--out", str(tmp_path / "m.npz")])
    captured = capsys.readouterr()
    assert status == 2 and "smallest reachable is" in captured.err and "kmeans2+fold" in captured.out
    assert not (tmp_path / "m.npz").exists()


def test_export_bad_arguments(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--max-bytes", "6k", "--codec", "int8"]) == 2
    assert main(["export", str(run_dir), "--codec", "int3", "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "error" in capsys.readouterr().err


def test_export_onnx(run_dir, tmp_path):
    """The ONNX file runs the model the artifact reloads to: same logits on the run's own images, batch dynamic."""
    ort = pytest.importorskip("onnxruntime")
    from compress.export import load
    from compress.train import load_run

    out, onnx = tmp_path / "m.npz", tmp_path / "m.onnx"
    assert main(["export", str(run_dir), "--codec", "fp16", "--out", str(out), "--onnx", str(onnx)]) == 0
    run = load_run(run_dir)
    x = run.normalizer(run.data().val.x[:5])
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = load(out)(x).numpy()
    assert got.shape == want.shape == (5, run.card.num_classes)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fit_budget_cli(tmp_path, capsys):
    out = tmp_path / "budget"
    status = main(["fit-budget", "--family", "cnn", "--max-bytes", "6000", "--data",
                   "synthetic:n=120,classes=3,size=16", "--epochs", "1", "--codecs", "kmeans4+fold",
                   "--model-opt", "channels=[8,16]", "--out", str(out)])
    assert status == 0 and "* kmeans4+fold" in capsys.readouterr().out
    assert os.path.getsize(out / "model.npz") <= 6000
    assert json.loads((out / "table.json").read_text())["rows"][0]["fits"]
    assert main(["fit-budget", "--family", "cnn", "--max-bytes", "6000", "--data", "default",
                 "--codecs", "int3", "--out", str(out)]) == 2
