"""Coded streams, sparse masks and plans as hostile input (issue 27, N2-N4, N16): a stream's declared count, bit
width and length are held against the bytes stored and the tensor's shape before anything is allocated; the
Huffman decoder's scratch is bounded by its block; a planned layer refuses outliers as whole-model codecs do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compress.quant import entropy
from compress.quant.entropy import MAX_CODE_BITS, check_stream, decode_stream, encode_stream
from compress.quant.layer_codecs import check_encoded, decode_any, encode_coded
from compress.quant.plan import LayerPlan, Plan, encode_with_plan
from compress.quant.sparse import check_mask, decode_mask, encode_mask


def _geometric(n, p, k, seed=0):
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(p, size=n) - 1, k - 1).astype(np.uint8)


def test_a_stream_longer_than_a_block_round_trips():
    s = _geometric(800_000, 0.3, 16)
    data, info = encode_stream(s, 4)
    assert info["coder"] == "huffman" and info["nbits"] > 2 * entropy.DECODE_BLOCK_BITS
    assert np.array_equal(decode_stream(data, info), s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 3000), p=st.floats(0.05, 0.9), bits=st.integers(1, 8), block=st.integers(1, 70))
def test_block_decoding_agrees_for_any_block_size(monkeypatch, n, p, bits, block):
    s = _geometric(n, p, 2 ** bits, seed=n)
    data, info = encode_stream(s, bits)
    with monkeypatch.context() as m:
        m.setattr(entropy, "DECODE_BLOCK_BITS", block)
        assert np.array_equal(decode_stream(data, info), s)


@pytest.mark.parametrize("edit,match", [
    ({"bits": 10**18}, "bits must be an integer from 1 to 8"),     # N3: 2**bits would never finish
    ({"bits": 10**9}, "bits must be an integer from 1 to 8"),
    ({"bits": 4.0}, "bits must be an integer"),
    ({"bits": True}, "bits must be an integer"),
    ({"count": 10**12}, "not an integer from 0 to"),                 # N2: decoded to whatever count is declared
    ({"count": math.inf}, "not an integer from 0 to"),               # N4: int(inf) was an OverflowError
    ({"count": -1}, "not an integer from 0 to"),
    ({"nbits": math.inf}, "nbits"),
    ({"nbits": 10**15}, "nbits"),
    ({"alphabet": 2**40}, "alphabet"),
    ({"coder": "lzma"}, "coder"),
])
def test_declared_fields_are_refused_before_allocating(edit, match):
    s = _geometric(5000, 0.2, 16)
    data, info = encode_stream(s, 4)
    assert info["coder"] == "huffman"
    with pytest.raises(ValueError, match=match):
        decode_stream(data, {**info, **edit}, max_count=s.size)


def test_a_packed_stream_may_not_declare_more_symbols_than_its_tensor():
    """N2's 1-bit packed stream: 1 MB of bytes declares 8M symbols; the tensor holds 64."""
    data = np.zeros(2**20, np.uint8)
    info = {"coder": "pack", "bits": 1, "count": 8 * data.size}
    with pytest.raises(ValueError, match="from 0 to 64"):
        decode_stream(data, info, max_count=64)
    with pytest.raises(ValueError, match="needs"):
        check_stream({**info, "count": 64}, data.size, max_count=64)


def test_huffman_bits_are_bounded_by_the_count():
    s = _geometric(100, 0.5, 4)
    data, info = encode_stream(s, 2)
    with pytest.raises(ValueError, match="nbits"):
        check_stream({**info, "coder": "huffman", "alphabet": 4, "nbits": MAX_CODE_BITS * 100 + 1},
                     data.size, max_count=100)


def test_mask_infos_are_checked_against_the_shape_and_bytes():
    mask = torch.rand(4000, generator=torch.Generator().manual_seed(0)) < 0.02
    data, info = encode_mask(mask)
    assert info["mask"] == "delta"
    assert np.array_equal(decode_mask(data, info), mask.numpy())
    with pytest.raises(ValueError, match="covers"):
        check_mask(info, data.size, 4001)
    with pytest.raises(ValueError, match="from 0 to"):
        decode_mask(data, {**info, "stream": {**info["stream"], "count": 10**9}})
    with pytest.raises(ValueError, match="numel"):
        decode_mask(data, {**info, "numel": math.inf})
    with pytest.raises(ValueError, match="bits"):
        decode_mask(data, {**info, "stream": {**info["stream"], "bits": 10**18}})


def _coded(label="kmeans3", density=0.1):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(32, 64, generator=g) * (torch.rand(32, 64, generator=g) < density)
    return encode_coded(w, label)


@pytest.mark.parametrize("label", ["kmeans3", "int4", "int8", "fp16", "kmeans1"])
def test_check_encoded_accepts_what_the_encoder_writes(label):
    for density in (0.05, 1.0):
        enc = _coded(label, density)
        check_encoded(enc.kind, enc.shape, enc.meta, {r: t.numel() for r, t in enc.arrays.items()})


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.update(scheme="gzip"), "scheme"),
    (lambda m: m.update(bits=10**18), "scheme"),
    (lambda m: m["values"].update(count=10**9), "from 0 to 2048"),
    (lambda m: m["mask"].update(numel=10**9), "covers"),
])
def test_a_coded_tensor_is_refused_before_decoding(edit, match):
    enc = _coded()
    assert enc.kind == "coded" and enc.meta["mask"] is not None
    edit(enc.meta)
    with pytest.raises(ValueError, match=match):
        decode_any(enc, name="tensor 'w'")


_FIELD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4),
                   st.lists(st.integers(0, 9), max_size=3))


@settings(max_examples=80, deadline=None)
@given(key=st.sampled_from(["coder", "bits", "count", "alphabet", "nbits", "mask", "numel", "scheme"]),
       value=_FIELD, where=st.sampled_from(["values", "mask", "meta"]))
def test_any_edited_field_decodes_the_same_or_raises_value_error(key, value, where):
    """Any value in any field of a coded tensor's infos: the same tensor, or a ValueError; never more values
    than the shape has elements, never another exception."""
    enc = _coded()
    reference = decode_any(enc)
    target = enc.meta if where == "meta" else enc.meta[where]
    target[key] = value
    try:
        out = decode_any(enc, name="tensor 'w'")
    except ValueError:
        return
    assert out.shape == reference.shape


def test_a_kmeans_layer_plan_refuses_an_outlier_naming_the_tensor():
    """N16: one weight of 50 among randn * 0.1 under kmeans3 decoded the rest with 100% error."""
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(0)) * 0.1
    w[3, 5] = 50.0
    state = {"features.0.weight": w, "features.0.bias": torch.zeros(64)}
    with pytest.raises(ValueError, match=r"tensor 'features.0.weight'.*kmeans3.*outliers up to \|w\| = 50"):
        encode_with_plan(state, Plan([LayerPlan("features.0.weight", "kmeans3")]))
    encode_with_plan(state, Plan([LayerPlan("features.0.weight", "fp16")]))      # floats keep the outlier
    state["features.0.weight"] = torch.randn(64, 64, generator=torch.Generator().manual_seed(1)) * 0.1
    for label in ("kmeans3", "int4", "int2", "kmeans1"):                           # ordinary weights pass
        encode_with_plan(state, Plan([LayerPlan("features.0.weight", label)]))


def test_plan_json_refuses_infinite_sizes():
    """N4: a plan's size_bytes of Infinity was an OverflowError."""
    good = Plan([LayerPlan("a.weight", "int4", size_bytes=10)]).to_json()
    for bad in (math.inf, -math.inf, -5):
        with pytest.raises(ValueError, match="plan layer sizes"):
            Plan.from_json({**good, "layers": [["a.weight", "int4", 0.0, bad, None]]})
    assert Plan([LayerPlan("a.weight", "int4", sensitivity=math.inf)]).to_json()["layers"][0][4] is None
