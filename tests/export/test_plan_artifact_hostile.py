"""Planned ("deep") artifacts as hostile input (issue 27, N2-N5): edited coded streams, sparse masks, plans, cards
and non-finite numbers, checksums recomputed. Each must end in ArtifactError naming the file and the field at
parse time (before any array is read), never another exception."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compress import models
from compress.export import artifact as A
from compress.export.manifest import parse_manifest
from compress.quant.plan import LayerPlan, Plan


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A small plan artifact holding every stream kind: Huffman and packed values, delta and bitmask masks."""
    torch.manual_seed(0)
    model = models.create("cnn", width_mult=0.25, num_classes=3, input_size=16).eval()
    g = torch.Generator().manual_seed(1)
    names = [n for n, p in model.named_parameters() if p.ndim > 1 and p.numel() >= 256]
    with torch.no_grad():
        for i, n in enumerate(names):
            p = model.get_parameter(n)
            p.mul_(torch.rand(p.shape, generator=g) < (0.05 if i % 2 else 0.5))
    codecs = ["kmeans3", "int4", "kmeans1", "int8"]
    plan = Plan([LayerPlan(n, codecs[i % 4]) for i, n in enumerate(names)])
    return A.save(model, tmp_path_factory.mktemp("plan") / "p.npz", plan=plan)


def _read(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("manifest").tobytes()), arrays


def _write(dst, manifest, arrays, text=None):
    manifest["checksum"] = A.checksum(manifest, arrays)
    text = json.dumps(manifest) if text is None else text(manifest)
    np.savez_compressed(dst, manifest=np.frombuffer(text.encode(), np.uint8), **arrays)
    return dst


def _coded(manifest, want):
    return next(r for r in manifest["tensors"] if r[1] == "coded" and want(r[3]))


def test_the_fixture_holds_every_stream_kind(planned):
    manifest, _ = _read(planned)
    infos = [r[3] for r in manifest["tensors"] if r[1] == "coded"]
    assert {i["values"]["coder"] for i in infos if "values" in i} == {"pack", "huffman"}
    assert {i["mask"]["mask"] for i in infos if i.get("mask")} == {"delta", "bitmask"}
    A.load(planned)


_EDITS = {
    "count beyond the shape": (lambda m: _coded(m, lambda i: i.get("values"))[3]["values"].update(count=10**9),
                               "stream count"),
    "bits 10**18": (lambda m: _coded(m, lambda i: i.get("values"))[3]["values"].update(bits=10**18), "bits"),
    "bits 10**9": (lambda m: _coded(m, lambda i: i.get("values"))[3]["values"].update(bits=10**9), "bits"),
    "meta bits 10**18": (lambda m: _coded(m, lambda i: i.get("values"))[3].update(bits=10**18), "scheme"),
    "nbits 10**15": (lambda m: _coded(m, lambda i: i.get("values", {}).get("coder") == "huffman")[3]["values"]
                     .update(nbits=10**15), "nbits"),
    "mask numel": (lambda m: _coded(m, lambda i: i.get("mask"))[3]["mask"].update(numel=10**12), "mask covers"),
    "mask stream count": (lambda m: _coded(m, lambda i: (i.get("mask") or {}).get("mask") == "delta")[3]["mask"]
                          ["stream"].update(count=10**9), "stream count"),
    "mask kind": (lambda m: _coded(m, lambda i: i.get("mask"))[3]["mask"].update(mask="rle"), "mask info"),
    "card input_size": (lambda m: m["model"]["card"]["build_args"].update(input_size=20000), "input_size"),
    "card in_chans": (lambda m: m["model"]["card"]["build_args"].update(in_chans=10**6), "in_chans"),
    "giant shape": (lambda m: m["tensors"][0].__setitem__(2, [2**20, 2**20]), "shape"),
}


@pytest.mark.parametrize("name", sorted(_EDITS))
def test_declared_sizes_are_refused_at_parse_time(tmp_path, planned, name):
    edit, match = _EDITS[name]
    manifest, arrays = _read(planned)
    edit(manifest)
    bad = _write(tmp_path / "bad.npz", manifest, arrays)
    with pytest.raises(A.ArtifactError, match=match) as info:
        parse_manifest(bad, json.dumps(manifest).encode())
    assert str(info.value).startswith(str(bad))
    with pytest.raises(A.ArtifactError, match=match):
        A.load(bad)


@pytest.mark.parametrize("where", ["nbits", "count", "size_bytes", "meta"])
def test_infinity_in_any_number_is_an_artifact_error(tmp_path, planned, where):
    """N4: Infinity (and NaN, and 1e999) was an OverflowError traceback."""
    manifest, arrays = _read(planned)
    huff = _coded(manifest, lambda i: i.get("values", {}).get("coder") == "huffman")[3]["values"]
    marker = 987654321987
    if where == "nbits":
        huff["nbits"] = marker
    elif where == "count":
        huff["count"] = marker
    elif where == "size_bytes":
        manifest["plan"]["layers"][0][3] = marker
    else:
        manifest["meta"]["accuracy"] = marker
    for literal in ("Infinity", "-Infinity", "NaN", "1e999"):
        bad = _write(tmp_path / "inf.npz", manifest, arrays, text=lambda m: json.dumps(m).replace(str(marker), literal))
        with pytest.raises(A.ArtifactError, match=r"manifest field \S+ is not a finite number") as info:
            A.load(bad)
        assert {"nbits": "nbits", "count": "count", "size_bytes": "plan.layers[0][3]",
                "meta": "meta.accuracy"}[where] in str(info.value)


def test_non_finite_meta_is_refused_when_saving(tmp_path):
    model = models.create("mlp", hidden=(8,), input_size=8)
    with pytest.raises(ValueError, match="NaN or infinity"):
        A.save(model, tmp_path / "m.npz", meta={"accuracy": float("nan")})
    assert not (tmp_path / "m.npz").exists()


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=3), max_leaves=8)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["coder", "bits", "count", "alphabet", "nbits", "mask", "numel", "stream", "scheme",
                              "values"]),
       which=st.integers(0, 20), value=_JSON)
def test_any_edited_stream_field_loads_or_raises_artifact_error(planned, tmp_path_factory, field, which, value):
    manifest, arrays = _read(planned)
    rows = [r for r in manifest["tensors"] if r[1] == "coded"]
    meta = rows[which % len(rows)][3]
    targets = [meta] + [d for d in (meta.get("values"), meta.get("mask"), (meta.get("mask") or {}).get("stream"))
                        if isinstance(d, dict)]
    targets[which % len(targets)][field] = value
    bad = _write(tmp_path_factory.mktemp("h") / "h.npz", manifest, arrays)
    try:
        A.load(bad)
    except A.ArtifactError:
        pass
