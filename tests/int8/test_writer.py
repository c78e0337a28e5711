"""compress.int8 (writer, qdq, check): the int8 file holds the artifact's int8 numbers exactly, ONNX Runtime runs it
with int8 kernels, and the check tells the decode from another model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from compress import int8 as O
from compress import models
from compress.export import artifact as A
from compress.quant.codecs import Codec

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
SHAPE = (1, 16, 16)


@pytest.fixture()
def net(randomize_batchnorm):
    torch.manual_seed(0)
    return randomize_batchnorm(models.create("mobilenet_v1", width_mult=0.5, num_classes=3, input_size=16)).eval()


def _artifact(model, path, codec="int8", fold_bn=True):
    A.save(model, path, codec=codec, fold_bn=fold_bn)
    manifest, encoded = A.read(path)
    return A.restore(manifest, encoded), O.int8_weights(manifest["codec"], encoded), encoded


def _optimized_ops(path, tmp_path) -> list[str]:
    from compress.onnx import ort_session_options

    options = ort_session_options(ort, threads=1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


def test_int8_file_holds_the_artifacts_int8_values_and_scales_exactly(net, tmp_path):
    decoded, weights, encoded = _artifact(net, tmp_path / "m.npz")
    export = O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, torch.randn(32, *SHAPE))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "m.onnx")).graph.initializer}
    assert export.stored and set(export.stored) <= set(weights)
    for name in export.stored:
        q, scale = weights[name]
        assert inits[f"{name}_quantized"].dtype == np.int8
        np.testing.assert_array_equal(inits[f"{name}_quantized"], encoded[name].arrays["data"].reshape(q.shape).numpy())
        np.testing.assert_array_equal(inits[f"{name}_scale"], encoded[name].arrays["scale"].float().numpy())
    # the codec keeps weights under min_numel in float16; those (and only those) are quantized here
    assert set(export.quantized_here) == {k for k, e in encoded.items() if e.kind == "float" and k.endswith("conv.weight")}


def test_onnxruntime_runs_it_with_int8_kernels_close_to_the_float_decode(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz")
    x = torch.randn(64, *SHAPE)
    O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, x[:48])
    graph_ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert "Relu" not in graph_ops                   # folded into the uint8 range of the conv's output
    ops = _optimized_ops(tmp_path / "m.onnx", tmp_path)
    assert "QLinearConv" in ops and "QGemm" in ops and "Conv" not in ops and "Gemm" not in ops
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x[48:].numpy()})[0]
    with torch.no_grad():
        want = decoded(x[48:]).numpy()
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max()


def test_signed_activations_are_symmetric_int8_and_relu_outputs_stay_uint8(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz")
    x = torch.randn(64, *SHAPE)
    export = O.export_int8_onnx(decoded, weights, tmp_path / "s.onnx", SHAPE, x[:48],
                                config=O.Int8Config(activations="int8"))
    assert "activations int8" in export.notes()[0]
    graph = onnx.load(str(tmp_path / "s.onnx")).graph
    zeros = {i.name[:-len("_zero_point")]: onnx.numpy_helper.to_array(i) for i in graph.initializer
             if i.name.endswith("_zero_point") and i.name.replace("_zero_point", "_quantized") not in
             {j.name for j in graph.initializer}}                           # activations, not weights
    assert zeros["input"].dtype == np.int8 and zeros["input"] == 0           # N(0, 1) input: signed, symmetric
    relu = [name for name in zeros if name.endswith("Relu_output_0")]        # convs whose ReLU was folded
    assert relu and all(zeros[name].dtype == np.uint8 and zeros[name] == 0 for name in relu)
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = decoded(x[48:]).numpy()
    assert np.abs(session.run(None, {"input": x[48:].numpy()})[0] - want).max() <= 0.1 * np.abs(want).max()
    with pytest.raises(ValueError, match="unknown activations 'int4'"):
        O.Int8Config(activations="int4")


def test_float_ops_stay_float_and_only_their_inputs_skip_quantization(net, tmp_path):
    from compress.int8.qdq import activation_tensors, quantize_graph
    from compress.onnx import export_onnx

    decoded, weights, _ = _artifact(net, tmp_path / "m.npz")
    float_model = onnx.load(str(export_onnx(decoded, tmp_path / "f.onnx", SHAPE, fold_bn=True)))
    stem = next(n for n in float_model.graph.node if n.op_type == "Conv")
    stored = {k: v for k, v in weights.items() if k == stem.input[1]} | {
        k: v for k, v in weights.items() if k != stem.input[1]}
    inits = {i.name for i in float_model.graph.initializer}
    for n in float_model.graph.node:   # weights the codec kept in float: quantize per tensor for the graph
        if n.op_type in ("Conv", "Gemm") and n.input[1] not in stored and n.input[1] in inits:
            w = onnx.numpy_helper.to_array(next(i for i in float_model.graph.initializer if i.name == n.input[1]))
            scale = np.float32(np.abs(w).max() / 127)
            stored[n.input[1]] = (np.round(w / scale).astype(np.int8), np.array([scale], np.float32))
    ranges = {a: (-4.0, 4.0) for a in activation_tensors(float_model)}
    qdq = quantize_graph(float_model, stored, ranges, float_ops=[stem.name])
    nodes = {n.name: n for n in qdq.graph.node}
    assert nodes[stem.name].input[0] == "input" and nodes[stem.name].input[1] == stem.input[1]   # float, no DQ
    assert "input_QuantizeLinear" not in nodes                  # the graph input only feeds the float stem
    assert sum(n.op_type == "DequantizeLinear" for n in qdq.graph.node) > 0
    with pytest.raises(ValueError, match="are not nodes of the graph"):
        quantize_graph(float_model, stored, ranges, float_ops=["no_such_node"])


def test_per_tensor_codec_works_too(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz", codec="int8-tensor")
    assert all(np.asarray(s).size == 1 for _, s in weights.values())
    O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, torch.randn(16, *SHAPE))
    assert "QLinearConv" in _optimized_ops(tmp_path / "m.onnx", tmp_path)


def test_codec_without_int8_path_names_the_supported_ones():
    with pytest.raises(ValueError, match="codec fp16 has no int8 execution path; supported: int8, int8-tensor"):
        O.int8_weights(Codec.parse("fp16"), {})


def test_int8_before_batchnorm_folding_is_refused(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz", fold_bn=False)
    with pytest.raises(ValueError, match="BatchNorm folded before quantization"):
        O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, torch.randn(8, *SHAPE))


def test_check_passes_for_the_decode_and_fails_for_another_model(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz")
    x = torch.randn(80, *SHAPE)
    O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, x)
    with torch.no_grad():
        y = decoded(x).argmax(1)
    check = O.check_int8(tmp_path / "m.onnx", decoded, x, y, config=O.Int8Config(min_agreement=0.9))
    assert check.passed and check.float_accuracy == 100.0 and check.images == 80
    other = copy.deepcopy(decoded)
    last = [m for m in other.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():   # logits negated: the other model predicts the least likely class
        last.weight.neg_()
        last.bias.neg_()
    with pytest.raises(O.Int8CheckError, match="same predictions"):
        O.check_int8(tmp_path / "m.onnx", other, x, y, config=O.Int8Config(min_agreement=1.0, max_drop_points=0.0))


def test_bad_calibration_and_settings_raise(net, tmp_path):
    decoded, weights, _ = _artifact(net, tmp_path / "m.npz")
    with pytest.raises(ValueError, match="calibration images have shape"):
        O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, torch.randn(8, 3, 16, 16))
    with pytest.raises(TypeError, match="float tensor"):
        O.export_int8_onnx(decoded, weights, tmp_path / "m.onnx", SHAPE, torch.zeros(8, *SHAPE, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown calibration 'kl'"):
        O.Int8Config(calibration="kl")
    assert not (tmp_path / "m.onnx").exists()
