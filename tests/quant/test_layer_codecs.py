"""Per-layer codecs: int4 / int8 per channel, k-means with sparse storage; plans; the error bounds."""

from __future__ import annotations

import pytest
import torch

from compress import models
from compress.quant.layer_codecs import LayerCodec, decode_any, encode_coded, encoded_bytes, entropy_report
from compress.quant.linear import dequantize_linear, quantize_linear
from compress.quant.plan import LayerPlan, Plan, encode_with_plan, quantize_with_plan  # the PlanConfig transform

G = torch.Generator().manual_seed(0)
W = torch.randn(64, 32, 3, 3, generator=G)


def _pruned(w, density):
    return w * (torch.rand(w.shape, generator=torch.Generator().manual_seed(1)) < density)


def test_the_int8_codecs_store_linear_8_bits():
    """The whole-model int8 codec and the per-layer int8 codec store what quantize_linear(w, 8) gives."""
    from compress.quant.codecs import Codec, encode_tensor

    q, s = quantize_linear(W, 8)
    whole = encode_tensor(W, Codec("int8"))
    assert whole.kind == "int8"
    assert torch.equal(whole.arrays["data"].reshape(W.shape), q) and torch.equal(whole.arrays["scale"], s)
    assert torch.equal(decode_any(encode_coded(W, "int8")), dequantize_linear(q, s))


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_linear_error_bound(bits):
    q, s = quantize_linear(W, bits)
    assert int(q.abs().max()) <= 2 ** (bits - 1) - 1
    err = (dequantize_linear(q, s) - W).abs().reshape(64, -1).amax(1)
    assert (err <= s.float() / 2 + 1e-6).all()


@pytest.mark.parametrize("label", ["fp16", "fp32", "int8", "int4", "int2", "kmeans4", "kmeans1"])
@pytest.mark.parametrize("density", [1.0, 0.5, 0.03])
def test_coded_round_trip_keeps_zeros_and_bounds(label, density):
    w = _pruned(W, density)
    enc = encode_coded(w, label)
    out = decode_any(enc)
    assert out.shape == w.shape and (out[w == 0] == 0).all()
    codec = LayerCodec.parse(label)
    if codec.scheme == "linear":
        q, s = quantize_linear(w, codec.bits)
        assert torch.equal(out, dequantize_linear(q, s))
    elif codec.scheme == "kmeans":
        assert torch.unique(out[w != 0]).numel() <= 2 ** codec.bits
    else:
        assert (out - w).abs().max() <= (w.abs().max() * 2 ** -11 if codec.bits == 16 else 0)


def test_sparse_storage_is_smaller_and_entropy_beats_packing():
    dense, sparse = encode_coded(W, "kmeans4"), encode_coded(_pruned(W, 0.05), "kmeans4")
    assert encoded_bytes(sparse) < encoded_bytes(dense) / 5
    assert sparse.meta["mask"]["mask"] == "delta"
    report = entropy_report({"w": encode_coded(_pruned(W, 0.05), "int4")})
    assert report["stored_bytes"] < report["packed_bytes"]


def test_shared_weights_are_stored_exactly():
    w = _pruned(torch.tensor([-0.5, 0.25, 1.0])[torch.randint(0, 3, (40, 40), generator=G)], 0.5)
    assert torch.equal(decode_any(encode_coded(w, "kmeans2")), w)


def test_non_finite_and_bad_labels_refused():
    w = W.clone()
    w[0, 0, 0, 0] = float("nan")
    for label in ("int4", "kmeans3", "fp16"):
        with pytest.raises(ValueError, match="non-finite"):
            encode_coded(w, label)
    with pytest.raises(ValueError, match="unknown layer codec"):
        LayerCodec.parse("int9")


def test_plan_encodes_named_layers_and_fills_sizes():
    torch.manual_seed(0)
    model = models.create("mobilenet_v1", width_mult=0.25, num_classes=10, input_size=28).eval()
    name = "features.3.conv_pw.conv.weight"
    plan = Plan([LayerPlan(name, "int4"), LayerPlan("classifier.0.weight", "kmeans3")])
    encoded = encode_with_plan(model.state_dict(), plan)
    assert encoded[name].kind == "coded" and plan.layers[0].size_bytes == encoded_bytes(encoded[name])
    assert encoded["features.0.conv.weight"].kind == "float"
    q = quantize_with_plan(model, plan)
    assert torch.equal(q.get_parameter(name), decode_any(encoded[name]))
    assert Plan.from_json(plan.to_json()).to_json() == plan.to_json()
    assert "int4" in plan.table() and "kmeans3" in plan.table()
    with pytest.raises(ValueError, match="does not have"):
        encode_with_plan(model.state_dict(), Plan([LayerPlan("nope.weight", "int4")]))
    with pytest.raises(ValueError, match="twice"):
        Plan([LayerPlan(name, "int4"), LayerPlan(name, "int8")])
