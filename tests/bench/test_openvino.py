"""The OpenVINO runtimes (``openvino``, ``openvino_int8``): checked against eager like every runtime, compiled per
batch size, run an int8 artifact's stored values, and refuse what they cannot do with a clear error."""

from __future__ import annotations

import sys

import pytest
import torch

from compress.bench import available_runtimes, fastest_latency, float_runtimes, latency, runtimes
from compress.cli import main
from compress.data import Split
from compress.export import artifact as A

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
SHAPE = (1, 16, 16)
FAST = dict(warmup=1, repeats=3, threads=1)


def _images(n: int) -> Split:
    torch.manual_seed(1)
    return Split(torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8), torch.zeros(n, dtype=torch.long),
                 mean=(0.5,), std=(0.25,))


def test_openvino_float_matches_eager_at_float32_tolerance_for_each_batch_size(net):
    records = latency.measure(net, SHAPE, runtime="openvino", batch_sizes=(1, 3), **FAST)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff < 1e-3 and r.median_ms > 0
        assert "float32 inference precision" in " ".join(r.notes)


def test_openvino_int8_runs_an_int8_artifacts_stored_values_with_signed_activations(net, tmp_path):
    path = A.save(net, tmp_path / "m.npz", codec="int8", fold_bn=True)
    records = latency.measure(path, SHAPE, runtime="openvino_int8", batch_sizes=(1, 4), data=_images(40), **FAST)
    for r in records:
        assert r.error is None, r.error
        notes = " ".join(r.notes)
        assert "the artifact's int8 values and scales" in notes and "activations int8" in notes
        assert "40 calibration images" in notes


def test_openvino_int8_outputs_are_close_to_the_int8_decode(net):
    x = torch.randn(8, *SHAPE)
    runner = runtimes.make_runner(net, SHAPE, runtime="openvino_int8", data=_images(64))
    call, output = runner(x)
    got = output(call())
    with torch.no_grad():
        want = net(x)
    assert got.shape == want.shape and (got - want).abs().max() <= 0.2 * want.abs().max()


def test_openvino_is_offered_and_can_be_the_fastest(net):
    assert {"openvino", "openvino_int8"} <= set(available_runtimes("cpu"))
    assert "openvino" in float_runtimes("cpu") and "openvino_int8" not in float_runtimes("cpu")
    ms, runtime = fastest_latency(net, SHAPE, runtimes=("openvino", "no_such_runtime"), warmup=1, repeats=3)
    assert runtime == "openvino" and ms > 0   # a candidate for the study's latency column, timed and named


def test_openvino_refuses_cuda_an_artifact_without_int8_path_and_a_missing_package(net, tmp_path, monkeypatch,
                                                                                     capsys):
    with pytest.raises(ValueError, match="runs on the CPU only"):
        runtimes.runtime_factory("openvino", "cuda")
    fp16 = A.save(net, tmp_path / "h.npz", codec="fp16")
    assert main(["bench", str(fp16), "--runtimes", "openvino_int8"]) == 2
    assert "codec fp16 has no int8 execution path" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "openvino", None)   # as if not installed: import raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'compress\[openvino\]'"):
        runtimes.check_runtime("openvino_int8", "cpu")
    assert "openvino" not in available_runtimes("cpu")
