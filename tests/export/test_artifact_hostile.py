"""Artifacts as hostile input (issue 16): byte flips, edited manifests with recomputed checksums, zip tricks.

Every bad file must end in ArtifactError (a ValueError) naming the file -- never another exception, never a
model built before its shapes were checked.
"""

from __future__ import annotations

import json
import struct
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compress import models
from compress.export import artifact as A
from compress.export.manifest import parse_manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    model = models.create("mlp", hidden=(8,), input_size=8)
    return {"npz": A.save(model, folder / "t.npz", codec="int8", compression="store"),
            "deflated": A.save(model, folder / "d.npz", codec="kmeans2", compression="deflate"),
            "pt": A.save(model, folder / "t.pt", codec="int8")}


def _manifest_and_arrays(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("manifest").tobytes()), arrays


def _write(dst, manifest, arrays, *, fix_checksum=True):
    if fix_checksum:
        manifest["checksum"] = A.checksum(manifest, arrays)
    np.savez(dst, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    return dst


def _edited(tiny, tmp_path, edit):
    manifest, arrays = _manifest_and_arrays(tiny["npz"])
    edit(manifest, arrays)
    return _write(tmp_path / "edited.npz", manifest, arrays)


@pytest.mark.parametrize("kind", ["npz", "deflated", "pt"])
def test_byte_flips_load_identically_or_raise_artifact_error(tmp_path, tiny, kind):
    data = tiny[kind].read_bytes()
    reference = A.load(tiny[kind]).state_dict()
    bad = tmp_path / tiny[kind].name
    for pos in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        for reader in (A.load, A.breakdown):
            try:
                out = reader(bad)
            except A.ArtifactError as exc:
                assert str(bad) in str(exc)
                continue
            if reader is A.load:   # a flip in a field nothing reads (zip timestamps, comments) is harmless
                assert all(torch.equal(out.state_dict()[k], v) for k, v in reference.items()), pos


def test_unsupported_compression_method_is_an_artifact_error(tmp_path, tiny):
    data = bytearray(tiny["npz"].read_bytes())
    data[8:10] = struct.pack("<H", 99)      # local header of the first member: compression method 99
    cd = data.rfind(b"PK\x01\x02")
    while cd > 0:                           # and every central-directory entry
        data[cd + 10:cd + 12] = struct.pack("<H", 99)
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    bad = tmp_path / "method.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(A.ArtifactError, match="method.npz"):
        A.load(bad)
    with pytest.raises(A.ArtifactError, match="method.npz"):
        A.breakdown(bad)


@pytest.mark.parametrize("shape,match", [([-1, 4], "non-negative ints"), ("16,4", "non-negative ints"),
                                         ([True, 4], "non-negative ints"), ([1.5, 4], "non-negative ints"),
                                         ([2**40, 2**40], "of at most 268435456 elements"),
                                         ([64, 64], "int8 tensor stores 512 values, shape \\(64, 64\\) needs 4096")])
def test_bad_manifest_shapes(tmp_path, tiny, shape, match):
    bad = _edited(tiny, tmp_path, lambda m, a: m["tensors"][0].__setitem__(2, shape))
    with pytest.raises(A.ArtifactError, match=match):
        A.load(bad)


@pytest.mark.parametrize("key,value", [("width_mult", float("nan")), ("width_mult", -1.0), ("width_mult", "2"),
                                       ("width_mult", 1e9), ("depth_mult", 0.0), ("depth_mult", 1e4),
                                       ("depth_mult", True)])
def test_bad_multipliers_are_refused_before_building(tmp_path, tiny, key, value):
    bad = _edited(tiny, tmp_path, lambda m, a: m["model"]["card"]["build_args"].update({key: value}))
    with pytest.raises(A.ArtifactError, match=key):
        A.load(bad)


def test_a_card_that_builds_other_shapes_names_the_file_and_tensor(tmp_path, tiny):
    bad = _edited(tiny, tmp_path, lambda m, a: m["model"]["card"]["build_args"].update(hidden=[16]))
    with pytest.raises(A.ArtifactError, match=r"edited\.npz: weights do not match the model.*blocks\.0"):
        A.load(bad)


@pytest.mark.parametrize("edit,match", [
    (lambda m, a: m["arrays"]["weights.int8"].update(count=-1), "count"),
    (lambda m, a: m["arrays"]["weights.int8"].update(dtype="object"), "dtype"),
    (lambda m, a: m["tensors"][0][4][0].__setitem__(2, 10**9), "inside a declared array"),
    (lambda m, a: m["tensors"].append(list(m["tensors"][0])), "repeats"),
    (lambda m, a: m["tensors"].__setitem__(0, "x"), "must be"),
])
def test_bad_manifest_tables(tmp_path, tiny, edit, match):
    with pytest.raises(A.ArtifactError, match=match):
        A.load(_edited(tiny, tmp_path, edit))


def test_stored_nan_weights_are_refused(tmp_path, tiny):
    def edit(manifest, arrays):
        arrays["scales.float16"] = arrays["scales.float16"].copy()
        arrays["scales.float16"][0] = np.nan

    with pytest.raises(A.ArtifactError, match="non-finite"):
        A.load(_edited(tiny, tmp_path, edit))


def test_pt_with_compressed_members_is_refused(tmp_path, tiny):
    bad = tmp_path / "z.pt"
    with zipfile.ZipFile(tiny["pt"]) as zin, zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with pytest.raises(A.ArtifactError, match="compressed members"):
        A.load(bad)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_manifest_parser_raises_only_artifact_error(raw):
    try:
        parse_manifest("m.npz", raw)
    except A.ArtifactError as exc:
        assert str(exc).startswith("m.npz: ")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.sampled_from([0, 1, 2, 3, 4, "tensors", "model", "arrays", "card", "build_args",
                                      "weights.int8", "count", "dtype", "width_mult"]), min_size=1, max_size=5),
       value=_JSON)
def test_edited_manifests_load_or_raise_artifact_error(tiny, path, value):
    manifest, arrays = _manifest_and_arrays(tiny["npz"])
    node = manifest
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict) != isinstance(path[-1], str):
        return
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return
    raw = json.dumps({**manifest, "checksum": A.checksum(manifest, arrays)}).encode()
    try:
        parse_manifest("m.npz", raw)
    except A.ArtifactError:
        pass
