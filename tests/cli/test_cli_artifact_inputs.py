"""``compress evaluate``, ``predict`` and ``bench`` on files: an artifact (.npz/.pt, card or program) or an ONNX file
takes its input size, normalization and class names from what it stores; bad files are one line and exit 2."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

from compress.cli import main
from compress.export import artifact as A
from compress.export import describe

DATA = "synthetic:n=200,classes=3,size=16"


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory):
    """The tiny run exported as an fp32 artifact and as an ONNX file with the normalization inside."""
    pytest.importorskip("onnxruntime")
    run = tiny_run(images=200, epochs=1)
    folder = tmp_path_factory.mktemp("files")
    npz, onnx = folder / "m.npz", folder / "m.onnx"
    assert main(["export", str(run), "--codec", "fp32", "--out", str(npz), "--onnx", str(onnx),
                 "--onnx-normalize"]) == 0
    return {"run": run, "npz": npz, "onnx": onnx, "folder": folder}


def _json_out(capsys, args):
    assert main(args) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _error(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_export_stores_the_preprocessing_in_both_files(files):
    for key in ("npz", "onnx"):
        info = describe(files[key])
        assert info.input_shape == (1, 16, 16) and info.class_names == ("class0", "class1", "class2")
        assert info.normalizer is not None and info.num_classes == 3
    assert describe(files["onnx"]).pixels and not describe(files["npz"]).pixels


def test_evaluate_a_file_as_its_run(files, capsys):
    want = _json_out(capsys, ["evaluate", str(files["run"]), "--data", DATA, "--json"])
    got = _json_out(capsys, ["evaluate", str(files["npz"]), "--data", DATA, "--json"])
    assert got["acc"] == want["acc"] and got["loss"] == pytest.approx(want["loss"], abs=1e-6)
    assert got["n"] == want["n"] and got["model"] == str(files["npz"])
    onnx = _json_out(capsys, ["evaluate", str(files["onnx"]), "--data", DATA, "--json"])
    assert onnx["acc"] == pytest.approx(want["acc"], abs=1 / want["n"] + 1e-9)
    assert onnx["loss"] == pytest.approx(want["loss"], abs=1e-4)


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f))


def test_predict_with_a_file_as_with_its_run(files, tmp_path, capsys):
    outs = {}
    for key in ("run", "npz", "onnx"):
        outs[key] = tmp_path / f"{key}.csv"
        assert main(["predict", str(files[key]), "--data", DATA, "--out", str(outs[key]), "--names"]) == 0
    capsys.readouterr()
    assert _rows(outs["npz"]) == _rows(outs["run"])
    run_rows, onnx_rows = _rows(outs["run"]), _rows(outs["onnx"])
    assert len(onnx_rows) == len(run_rows) and sum(a != b for a, b in zip(run_rows, onnx_rows)) <= 1
    assert {r[1] for r in run_rows[1:]} <= {"class0", "class1", "class2"}


def test_bench_an_onnx_file_on_onnxruntime(files, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(files["onnx"]), "--batch-sizes", "1,4", "--warmup", "1", "--repeats", "2",
                 "--json", str(out)]) == 0
    assert "onnxruntime" in capsys.readouterr().out
    records = json.loads(out.read_text())
    assert [r["runtime"] for r in records] == ["onnxruntime"] * 2 and all(r["error"] is None for r in records)
    assert records[0]["input_shape"] == [1, 16, 16]
    assert "onnxruntime or openvino" in _error(capsys, ["bench", str(files["onnx"]), "--runtimes", "eager"])


class Plain(nn.Module):
    """A model compress has no card for: its artifact holds a program."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x):
        return self.body(x)


def test_a_program_artifact_evaluates_predicts_and_benches(tmp_path, capsys):
    torch.manual_seed(0)
    path = A.save(Plain().eval(), tmp_path / "plain.pt", codec="fp16", input_shape=(1, 16, 16),
                  normalizer={"mean": [0.5], "std": [0.25]}, class_names=["a", "b", "c"])
    result = _json_out(capsys, ["evaluate", str(path), "--data", DATA, "--json"])
    assert 0 <= result["acc"] <= 1 and result["n"] > 0
    assert main(["predict", str(path), "--data", DATA, "--out", str(tmp_path / "p.csv"), "--names"]) == 0
    assert {r[1] for r in _rows(tmp_path / "p.csv")[1:]} <= {"a", "b", "c"}
    assert main(["bench", str(path), "--batch-sizes", "2", "--warmup", "1", "--repeats", "2",
                 "--runtimes", "eager"]) == 0
    assert "eager" in capsys.readouterr().out


def test_bad_files_are_one_line_and_exit_2(files, tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("not a model\n")
    assert "not a compress artifact" in _error(capsys, ["evaluate", str(text), "--data", DATA])
    truncated = tmp_path / "t.onnx"
    truncated.write_bytes(files["onnx"].read_bytes()[:400])
    assert "truncated or damaged" in _error(capsys, ["evaluate", str(truncated), "--data", DATA])
    assert "truncated or damaged" in _error(capsys, ["bench", str(truncated)])
    truncated_npz = tmp_path / "t.npz"
    truncated_npz.write_bytes(files["npz"].read_bytes()[:-100])
    assert str(truncated_npz) in _error(capsys, ["predict", str(truncated_npz), "--data", DATA, "--out",
                                                 str(tmp_path / "x.csv")])
    assert "give --data" in _error(capsys, ["evaluate", str(files["npz"])])
    assert "4 classes but m.npz has 3" in _error(capsys, ["evaluate", str(files["npz"]), "--data",
                                                          "synthetic:n=200,classes=4,size=16"])
    assert "3 channels but m.onnx takes 1" in _error(capsys, ["evaluate", str(files["onnx"]), "--data",
                                                              "synthetic:n=200,classes=3,size=16,chans=3"])


def test_an_onnx_file_without_metadata_is_refused_where_needed(files, tmp_path, capsys):
    from compress.onnx import export_onnx

    bare = export_onnx(A.load(files["npz"]), tmp_path / "bare.onnx", (1, 16, 16))
    assert "no input normalization" in _error(capsys, ["evaluate", str(bare), "--data", DATA])
    assert main(["bench", str(bare), "--batch-sizes", "1", "--warmup", "0", "--repeats", "1"]) == 0  # shape: graph
    capsys.readouterr()
    weights_only = A.save(Plain(), tmp_path / "w.npz", normalizer={"mean": [0.5], "std": [0.25]})
    assert "model=<instance>" in _error(capsys, ["evaluate", str(weights_only), "--data", DATA])
