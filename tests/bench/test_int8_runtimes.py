"""The int8 latency runtimes (onnxruntime_int8, torch_int8), the half-precision CUDA graph runtimes, and
``compress bench`` naming the fastest runtime that passed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compress.bench import latency, runtime_names, runtimes
from compress.cli import main
from compress.data import Split
from compress.export import artifact as A
from compress.int8 import int8_source, int8_weights

pytest.importorskip("onnxruntime")
SHAPE = (1, 16, 16)
FAST = dict(warmup=1, repeats=3, threads=1)


def _images(n: int, shape=SHAPE) -> Split:
    """``n`` random uint8 images as a split (the data int8 runtimes calibrate on), with its own statistics."""
    torch.manual_seed(1)
    return Split(torch.randint(0, 256, (n, *shape), dtype=torch.uint8), torch.zeros(n, dtype=torch.long),
                 mean=(0.5,), std=(0.25,))


def _installed(runtime: str) -> None:
    if runtime not in runtimes.available_runtimes("cpu"):
        pytest.skip(f"{runtime} is not installed here (openvino_int8: pip install 'compress[openvino]')")


@pytest.mark.parametrize("runtime", runtime_names(kind="int8"))
def test_int8_runtimes_pass_their_check_on_a_float_model(net, runtime):
    _installed(runtime)
    records = latency.measure(net, SHAPE, runtime=runtime, batch_sizes=(1, 4), data=_images(40), **FAST)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff is not None and r.median_ms > 0
        notes = " ".join(r.notes)
        assert "int8 per output channel after BatchNorm folding" in notes and "40 calibration images" in notes


@pytest.mark.parametrize("runtime", runtime_names(kind="int8"))
def test_int8_runtimes_run_an_int8_artifacts_stored_values(net, tmp_path, runtime):
    _installed(runtime)
    path = A.save(net, tmp_path / "m.npz", codec="int8", fold_bn=True)
    (record,) = latency.measure(path, SHAPE, runtime=runtime, batch_sizes=(2,), **FAST)
    assert record.error is None, record.error
    notes = " ".join(record.notes)
    assert "the artifact's int8 values and scales" in notes and "64 N(0, 1) random inputs" in notes


def test_torch_int8_kernels_hold_the_stored_int8_weights(net, tmp_path):
    manifest, encoded = A.read(A.save(net, tmp_path / "m.npz", codec="int8", fold_bn=True))
    weights = int8_weights(manifest["codec"], encoded)
    runner = runtimes.make_runner(A.restore(manifest, encoded), SHAPE, runtime="torch_int8", weights=weights)
    checked = 0
    for name, module in runner.model.named_modules():
        if f"{name}.weight" in weights and hasattr(module, "weight") and callable(module.weight):
            q, scale = weights[f"{name}.weight"]
            w = module.weight()
            np.testing.assert_array_equal(w.int_repr().numpy(), q)
            np.testing.assert_allclose(w.q_per_channel_scales().numpy(), scale.reshape(-1), rtol=0)
            checked += 1
    assert checked == len(weights)


def test_int8_runtime_on_an_artifact_without_int8_path_is_a_clear_error(net, tmp_path):
    path = A.save(net, tmp_path / "m.npz", codec="fp16")
    with pytest.raises(ValueError, match="codec fp16 has no int8 execution path; supported: int8, int8-tensor"):
        latency.measure(path, SHAPE, runtime="onnxruntime_int8", batch_sizes=(1,), **FAST)
    unfolded = A.save(net, tmp_path / "u.npz", codec="int8")
    (record,) = latency.measure(unfolded, SHAPE, runtime="torch_int8", batch_sizes=(1,), **FAST)
    assert "BatchNorm folded before quantization" in record.error


def test_int8_source_quantizes_a_float_model_as_the_codec_does(net, tmp_path):
    decoded, weights, _ = int8_source(net, None)
    for name, (q, scale) in weights.items():
        w = decoded.state_dict()[name]
        np.testing.assert_array_equal(w.numpy(), (torch.from_numpy(q).float()
                                                  * torch.from_numpy(scale).float().reshape(-1, *[1] * (q.ndim - 1))).numpy())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in decoded.modules())
    # bit for bit the numbers of the file compress export --codec int8 --fold-bn writes
    manifest, encoded = A.read(A.save(net, tmp_path / "m.npz", codec="int8", fold_bn=True))
    stored = int8_weights(manifest["codec"], encoded)
    assert weights.keys() == stored.keys()
    for name, (q, scale) in stored.items():
        np.testing.assert_array_equal(weights[name][0], q)
        np.testing.assert_array_equal(weights[name][1], scale)


def test_data_of_the_wrong_shape_or_type_raises(net):
    with pytest.raises(ValueError, match=r"data: images have shape \(1, 8, 8\), the model takes 1x16x16"):
        latency.measure(net, SHAPE, runtime="onnxruntime_int8", data=_images(4, (1, 8, 8)), **FAST)
    with pytest.raises(TypeError, match="data must be a DataBundle or a Split"):
        latency.measure(net, SHAPE, runtime="onnxruntime_int8", data=torch.randn(4, *SHAPE), **FAST)
    with pytest.raises(ValueError, match="needs device 'cuda'"):
        runtimes.check_runtime("cuda_graph_fp16", "cpu")


def test_cli_bench_calibrates_on_the_runs_training_images(tmp_path):
    import json

    from compress import data, models, train

    bundle = data.synthetic(150, num_classes=3, size=16, seed=1)
    model = models.create("mlp", width_mult=0.125, num_classes=3, input_size=16)
    train.fit(model, bundle, train.TrainConfig(epochs=1, batch_size=32, threads=1, augment=False),
              out=tmp_path / "run", progress=False)
    out = tmp_path / "bench.json"
    assert main(["bench", str(tmp_path / "run"), "--runtimes", "eager,onnxruntime_int8", "--batch-sizes", "2",
                 "--repeats", "2", "--warmup", "0", "--json", str(out)]) == 0
    eager, int8 = json.loads(out.read_text())
    assert eager["error"] is None and int8["error"] is None, int8["error"]
    assert f"activation ranges from {len(bundle.train)} calibration images" in int8["notes"]


def test_cli_bench_names_the_fastest_runtime_that_passed(net, tmp_path, capsys):
    path = A.save(net, tmp_path / "m.npz", codec="int8", fold_bn=True)
    assert main(["bench", str(path), "--batch-sizes", "1", "--repeats", "3", "--warmup", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime_int8" in out and "torch_int8" in out
    assert "fastest runtime that passed its output check:" in out and "batch 1: " in out
    fp16 = A.save(net, tmp_path / "h.npz", codec="fp16")
    assert main(["bench", str(fp16), "--batch-sizes", "1", "--repeats", "2", "--warmup", "0"]) == 0
    assert "int8" not in capsys.readouterr().out.split("fastest")[0]   # no int8 path: not in the default list
    assert main(["bench", str(fp16), "--runtimes", "onnxruntime_int8"]) == 2
    assert "has no int8 execution path" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("runtime", ["cuda_graph_fp16", "cuda_graph_bf16"])
def test_half_cuda_graphs_match_eager(net, runtime):
    if runtime == "cuda_graph_bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    records = latency.measure(net, SHAPE, runtime=runtime, device="cuda", batch_sizes=(1, 8), warmup=2, repeats=5)
    for r in records:
        assert r.error is None, r.error
        assert r.max_abs_diff is not None and r.median_ms > 0
        assert ("float16" if runtime.endswith("fp16") else "bfloat16") in " ".join(r.notes)
