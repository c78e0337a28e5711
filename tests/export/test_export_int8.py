"""compress.export.int8 and ``compress export --onnx F --int8``: an int8 artifact as a calibrated, checked QDQ file,
data passed the one way (a bundle or split plus its normalizer)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress import data
from compress.cli import main
from compress.export import artifact as A
from compress.export import int8 as E
from compress.int8 import Int8CheckError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
SHAPE = (1, 16, 16)


def _optimized_ops(path, tmp_path) -> list[str]:
    from compress.onnx import ort_session_options

    options = ort_session_options(ort, threads=1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=300, epochs=2)


@pytest.mark.parametrize("calibration", ["minmax", "percentile", "entropy"])
def test_cli_export_int8_onnx(run_dir, tmp_path, capsys, calibration):
    args = ["export", str(run_dir), "--codec", "int8", "--fold-bn", "--out", str(tmp_path / "m.npz"),
            "--onnx", str(tmp_path / "m.onnx"), "--int8", "--calibration", calibration, "--json"]
    assert main(args) == 0
    check = json.loads(capsys.readouterr().out)["int8_check"]
    assert check["passed"] and check["agreement"] >= 0.99 and check["images"] > 0
    assert "QLinearConv" in _optimized_ops(tmp_path / "m.onnx", tmp_path)


def test_cli_export_int8_symmetric_activations(run_dir, tmp_path, capsys):
    args = ["export", str(run_dir), "--codec", "int8", "--fold-bn", "--out", str(tmp_path / "m.npz"),
            "--onnx", str(tmp_path / "m.onnx"), "--int8", "--int8-activations", "int8", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["int8_check"]["passed"]
    zero = next(i for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer if i.name == "input_zero_point")
    assert onnx.numpy_helper.to_array(zero).dtype == np.int8           # the normalized input has negative values
    with pytest.raises(SystemExit) as exit_info:   # argparse's one line and status 2
        main(args[:-3] + ["--int8-activations", "int4"])
    assert exit_info.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err


def test_cli_export_int8_bad_input(run_dir, tmp_path, capsys):
    out = ["--out", str(tmp_path / "m.npz")]
    assert main(["export", str(run_dir), "--codec", "fp16", *out, "--onnx", str(tmp_path / "m.onnx"), "--int8"]) == 2
    assert "codec fp16 has no int8 execution path; supported: int8, int8-tensor" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--codec", "int8", *out, "--onnx", str(tmp_path / "m.onnx"), "--int8"]) == 2
    assert "add --fold-bn" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--codec", "int8", "--fold-bn", *out, "--int8"]) == 2
    assert "give --onnx" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.npz").exists()


def test_artifact_export_calibrates_on_the_training_split_and_checks_on_the_evaluation_split(run_dir, tmp_path):
    from compress.int8 import export_int8_onnx, int8_weights
    from compress.train import load_run

    run = load_run(run_dir)
    bundle = run.data()
    path = _int8_artifact(run_dir, tmp_path)
    result = E.export_int8_artifact(path, tmp_path / "m.onnx", bundle, normalizer=run.normalizer)
    assert result.path == tmp_path / "m.onnx" and result.check.passed
    assert result.check.images == len(bundle.split()) and result.export.calibration_images == len(bundle.train)
    # the same activation ranges as the file written from the training images drawn by hand (seed 0)
    manifest, encoded = A.read(path)
    index = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(0))[:512]
    export_int8_onnx(A.restore(manifest, encoded), int8_weights(manifest["codec"], encoded), tmp_path / "h.onnx",
                     SHAPE, run.normalizer(bundle.train.x[index]))
    scales = [{i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(f)).graph.initializer
               if i.name.endswith("_scale")} for f in (tmp_path / "m.onnx", tmp_path / "h.onnx")]
    assert scales[0].keys() == scales[1].keys() and all(np.array_equal(scales[0][k], scales[1][k]) for k in scales[0])


def test_artifact_export_result_reads_as_a_table_and_a_dict(run_dir, tmp_path):
    from compress.train import load_run

    run = load_run(run_dir)
    result = E.export_int8_artifact(_int8_artifact(run_dir, tmp_path), tmp_path / "m.onnx", run.data(),
                                    normalizer=run.normalizer)
    text = result.table()
    assert text.splitlines()[0] == f"wrote {tmp_path / 'm.onnx'}" and result.check.summary() in text
    d = json.loads(json.dumps(result.to_dict()))
    assert d["path"] == str(tmp_path / "m.onnx") and d["check"] == result.check.to_dict()
    assert d["calibration"] == "minmax" and d["stored"] == result.export.stored


def test_artifact_export_refuses_a_codec_without_int8_path_and_data_of_another_type(run_dir, tmp_path):
    from compress.train import load_run

    run = load_run(run_dir)
    kmeans = A.save(run.model, tmp_path / "k.npz", codec="kmeans4", fold_bn=True)
    with pytest.raises(ValueError, match="kmeans4 has no int8 execution path"):
        E.export_int8_artifact(kmeans, tmp_path / "k.onnx", run.data(), normalizer=run.normalizer)
    with pytest.raises(TypeError, match="data must be a DataBundle or a Split"):
        E.export_int8_artifact(_int8_artifact(run_dir, tmp_path), tmp_path / "k.onnx", torch.randn(8, *SHAPE))
    assert not (tmp_path / "k.onnx").exists()


def test_a_failed_check_writes_no_onnx_file(run_dir, tmp_path, monkeypatch):
    def failing(*args, **kwargs):
        raise Int8CheckError("int8 vs float decode: 50.00% same predictions")

    monkeypatch.setattr(E, "check_int8", failing)
    with pytest.raises(Int8CheckError):
        E.export_int8_artifact(_int8_artifact(run_dir, tmp_path), tmp_path / "m.onnx",
                               data.synthetic(60, num_classes=3, size=16))
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.glob(".m.onnx*"))


def _int8_artifact(run_dir, tmp_path):
    from compress.train import load_run

    return A.save(load_run(run_dir).model, tmp_path / "m.npz", codec="int8", fold_bn=True)
