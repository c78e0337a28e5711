"""``compress export`` refuses two outputs on one path before any work (issue 27, N1): ``--out a.npz --onnx a.npz``
would leave a.npz holding the ONNX file, and with ``--overwrite`` destroy the artifact that was there."""

from __future__ import annotations

import pytest

from compress.cli import main
from compress.export import artifact as A
from compress.export import export_run


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=200, epochs=1)


@pytest.mark.parametrize("name, extra", [
    ("a.npz", ["--codec", "int8", "--fold-bn"]), ("a.npz", ["--codec", "int8", "--fold-bn", "--int8"]),
    ("a.npz", ["--max-bytes", "100k"]), ("a.pt", ["--codec", "fp16"]), ("a.npz", ["--codec", "int8", "--overwrite"]),
])
def test_onnx_on_the_artifacts_path_is_refused_before_any_work(run_dir, tmp_path, monkeypatch, capsys, name, extra):
    monkeypatch.chdir(tmp_path)
    status = main(["export", str(run_dir), *extra, "--out", name, "--onnx", f"./{name}"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0] and "--onnx" in err[0] and "--out" in err[0]
    assert list(tmp_path.iterdir()) == []   # nothing written


def test_an_existing_artifact_survives_with_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "a.npz"
    assert main(["export", str(run_dir), "--codec", "int8", "--fold-bn", "--out", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    (tmp_path / "link").symlink_to(tmp_path)
    for onnx in (out, tmp_path / "link" / "a.npz"):
        status = main(["export", str(run_dir), "--codec", "int8", "--fold-bn", "--out", str(out), "--onnx",
                       str(onnx), "--overwrite", "--int8"])
        assert status == 2 and "the ONNX file would replace the artifact" in capsys.readouterr().err
    assert out.read_bytes() == before
    A.load(out)


def test_default_out_and_onnx_in_the_run_folder(run_dir):
    with pytest.raises(ValueError, match="--onnx .* is the artifact's path"):
        export_run(run_dir, onnx=run_dir / "model.npz")
