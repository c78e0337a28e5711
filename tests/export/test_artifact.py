"""Artifacts: save/load identity for every family, codec and format; byte breakdown; every kind of bad file."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from compress.export import artifact as A
from compress import models
from compress.models import count_batchnorm
from compress.quant import Codec, CodecConfig, quantize


X = torch.randn(4, 1, 48, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def small(randomize_batchnorm):
    torch.manual_seed(0)
    return randomize_batchnorm(models.create("mobilenet_v1", width_mult=0.125))


def _same_predictions(path, reference, **kw):
    loaded = A.load(path, **kw)
    with torch.no_grad():
        assert torch.equal(loaded(X), reference(X))
    return loaded


# ------------------------------------------------------------------ identity
@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_every_family_round_trips(tmp_path, name, fmt, randomize_batchnorm):
    torch.manual_seed(0)
    model = randomize_batchnorm(models.create(name, width_mult=0.25))
    path = A.save(model, tmp_path / f"m.{fmt}", codec="fp16", fold_bn=True)
    loaded = _same_predictions(path, quantize(model, CodecConfig("fp16", fold_bn=True)).model)
    assert loaded.card.build_args == model.card.build_args and not loaded.training
    assert loaded.card.bn_folded == count_batchnorm(model) - count_batchnorm(loaded)


@pytest.mark.parametrize("codec,fold,fmt", [
    (c, f, "npz") for c in ("fp32", "fp16", "int8", "int8-tensor", "kmeans1", "kmeans4", "kmeans8")
    for f in (False, True)] + [("fp32", False, "pt"), ("int8", True, "pt"), ("kmeans3", False, "pt")])
def test_codecs_round_trip_bitwise(tmp_path, small, codec, fold, fmt):
    path = A.save(small, tmp_path / f"m.{fmt}", codec=codec, fold_bn=fold)
    loaded = _same_predictions(path, quantize(small, CodecConfig(codec, fold_bn=fold)).model)
    assert (count_batchnorm(loaded) > 0) != fold
    if codec == "fp32" and not fold:
        with torch.no_grad():
            assert torch.equal(loaded(X), small(X))
    assert sum(A.breakdown(path)[k] for k in ("weights_bytes", "scales_bytes", "manifest_bytes",
                                               "overhead_bytes")) == os.path.getsize(path)


def test_fp32_is_exact_and_codecs_shrink(tmp_path, small):
    sizes = {c: os.path.getsize(A.save(small, tmp_path / f"{c}.npz", codec=c, fold_bn=True))
             for c in ("fp32", "fp16", "int8", "kmeans4", "kmeans2")}
    assert sizes["fp32"] > sizes["fp16"] > sizes["int8"] > sizes["kmeans4"] > sizes["kmeans2"]
    params = sum(p.numel() for p in small.parameters())
    assert sizes["fp16"] < 2.2 * params and sizes["kmeans4"] < 0.7 * params


def test_plain_containers_load_safely(tmp_path, small):
    npz = A.save(small, tmp_path / "m.npz", codec="int8")
    with np.load(npz, allow_pickle=False) as z:
        manifest = json.loads(z["manifest"].tobytes())
        assert all(z[k].dtype != object for k in z.files)
    assert manifest["format"] == A.FORMAT and manifest["codec"]["name"] == "int8"
    assert manifest["model"]["card"] == small.card.to_dict()
    pt = A.save(small, tmp_path / "m.pt", codec="int8")
    obj = torch.load(pt, weights_only=True)
    assert isinstance(obj["manifest"], str) and all(isinstance(v, torch.Tensor) for k, v in obj.items()
                                                    if k != "manifest")


def test_compression_choice(tmp_path, small):
    sizes = {c: len(A.serialize(small, codec="int8", compression=c)) for c in ("auto", "store", "deflate")}
    assert sizes["auto"] == min(sizes["store"], sizes["deflate"])
    stored = A.save(small, tmp_path / "s.npz", codec="fp16", compression="store")
    b = A.breakdown(stored)
    n_fp16 = sum(t.numel() for k, t in small.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert b["weights_bytes"] == 2 * n_fp16  # stored: exact payload, headers are overhead


def test_atomic_write_leaves_no_temporaries(tmp_path, small):
    A.save(small, tmp_path / "m.npz")
    A.save(small, tmp_path / "m.npz", codec="int8")  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_does_not_modify_model(small):
    before = {k: v.clone() for k, v in small.state_dict().items()}
    A.serialize(small, codec="kmeans3", fold_bn=True)
    assert count_batchnorm(small)
    assert all(torch.equal(before[k], v) for k, v in small.state_dict().items())


def test_saving_an_already_folded_model(tmp_path, small):
    folded = quantize(small, CodecConfig("fp16", fold_bn=True)).model
    path = A.save(folded, tmp_path / "f.npz", codec="fp16")
    _same_predictions(path, folded)


# ------------------------------------------------------------------ models outside compress.models
class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("fold", [False, True])
def test_foreign_model_needs_an_instance(tmp_path, fold, randomize_batchnorm):
    torch.manual_seed(0)
    model = randomize_batchnorm(Plain())
    path = A.save(model, tmp_path / "p.npz", codec="fp16", fold_bn=fold)
    with pytest.raises(A.ArtifactError, match=r"not built by compress.models.*Plain.*model=<instance>"):
        A.load(path)
    _same_predictions(path, quantize(model, CodecConfig("fp16", fold_bn=fold)).model, model=Plain())


def test_wrong_instance_is_a_value_error(tmp_path, small):
    path = A.save(Plain(), tmp_path / "p.npz")
    with pytest.raises(ValueError, match="do not match"):
        A.load(path, model=nn.Sequential(nn.Linear(2, 2)))


# ------------------------------------------------------------------ bad files
def _rewrite_npz(src, dst, edit):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays["manifest"].tobytes())
    edit(manifest, arrays)
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(dst, **arrays)
    return dst


@pytest.fixture()
def good(tmp_path, small):
    return A.save(small, tmp_path / "good.npz", codec="kmeans4", compression="store")


def test_truncated(tmp_path, good):
    data = good.read_bytes()
    for n in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / "t.npz"
        bad.write_bytes(data[:n])
        with pytest.raises(A.ArtifactError):
            A.load(bad)


def test_edited_bytes(tmp_path, good):
    data = bytearray(good.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the weights: zip CRC catches it
    bad = tmp_path / "e.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(A.ArtifactError):
        A.load(bad)


def test_checksum_mismatch(tmp_path, good):
    def flip(manifest, arrays):
        arrays["weights.uint8"] = arrays["weights.uint8"].copy()
        arrays["weights.uint8"][0] ^= 1

    bad = _rewrite_npz(good, tmp_path / "c.npz", flip)
    with pytest.raises(A.ArtifactError, match="checksum"):
        A.load(bad)


def test_unknown_version(tmp_path, good):
    bad = _rewrite_npz(good, tmp_path / "v.npz", lambda m, a: m.update(format="compress.artifact/99"))
    with pytest.raises(A.ArtifactError, match="unsupported artifact format 'compress.artifact/99'"):
        A.load(bad)


def test_version_1_files_still_load(tmp_path, good, small):
    def edit(manifest, arrays):   # the layout compress 0.1 wrote: build_args in "model", a separate version
        card = manifest["model"].pop("card")
        manifest["model"]["build_args"] = card["build_args"]
        manifest.update(format="compress-artifact", format_version=1)
        manifest["checksum"] = A._checksum(manifest, {k: v for k, v in arrays.items() if k != "manifest"})

    _same_predictions(_rewrite_npz(good, tmp_path / "v1.npz", edit), A.load(good))


def test_unknown_codec(tmp_path, good):
    def edit(manifest, arrays):
        manifest["codec"]["name"] = "int3"
        manifest["checksum"] = A._checksum(manifest, {k: v for k, v in arrays.items() if k != "manifest"})

    bad = _rewrite_npz(good, tmp_path / "u.npz", edit)
    with pytest.raises(A.ArtifactError, match="unknown codec"):
        A.load(bad)


def test_not_an_artifact(tmp_path, small):
    cases = {"text.npz": b"hello, not a model\n", "empty.npz": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    torch.save(small.state_dict(), tmp_path / "sd.pt")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("readme.txt", "hi")
    for name in ("text.npz", "empty.npz", "plain.npz", "sd.pt", "other.npz"):
        with pytest.raises(A.ArtifactError):
            A.load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        A.load(tmp_path / "missing.npz")


def test_npz_with_pickled_objects(tmp_path):
    np.savez(tmp_path / "o.npz", manifest=np.frombuffer(b"{}", np.uint8), evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(A.ArtifactError, match="refused"):
        A.load(tmp_path / "o.npz")


_RAN = []


class _Payload:
    def __reduce__(self):
        return (_RAN.append, ("code ran",))


def test_pt_with_arbitrary_objects_runs_no_code(tmp_path):
    torch.save({"manifest": "{}", "x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(A.ArtifactError, match="weights_only"):
        A.load(tmp_path / "evil.pt")
    assert _RAN == []


def test_bad_save_arguments(tmp_path, small):
    with pytest.raises(ValueError, match="suffix"):
        A.save(small, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="does not match"):
        A.save(small, tmp_path / "m.npz", format="pt")
    with pytest.raises(ValueError, match="codec"):
        A.save(small, tmp_path / "m.npz", codec="int4")
    with pytest.raises(ValueError, match="compression"):
        A.serialize(small, compression="zstd")


def test_artifact_error_is_value_error():
    assert issubclass(A.ArtifactError, ValueError)


def test_bad_pt_files(tmp_path, small):
    good = A.save(small, tmp_path / "good.pt", codec="int8")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    edited = bytearray(data)
    edited[len(data) // 2] ^= 0xFF
    (tmp_path / "edit.pt").write_bytes(bytes(edited))
    obj = torch.load(good, weights_only=True)
    obj["weights.int8"][0] += 1
    torch.save(obj, tmp_path / "sum.pt")
    for name in ("trunc.pt", "edit.pt", "sum.pt"):
        with pytest.raises(A.ArtifactError):
            A.load(tmp_path / name)


@pytest.mark.parametrize("options", [{"scale_dtype": "float32"}, {"keep_dtype": "float32"}, {"min_numel": 0}])
def test_codec_options_round_trip(tmp_path, small, options):
    path = A.save(small, tmp_path / "m.npz", codec="int8", fold_bn=True, **options)
    assert A.read(path)[0]["codec"][next(iter(options))] == next(iter(options.values()))
    _same_predictions(path, quantize(small, CodecConfig(Codec.parse("int8", **options), fold_bn=True)).model)


def test_bad_card(tmp_path, good):
    def edit(manifest, arrays):
        manifest["model"]["card"]["build_args"]["name"] = "resnet9000"
        manifest["checksum"] = A._checksum(manifest, {k: v for k, v in arrays.items() if k != "manifest"})

    with pytest.raises(A.ArtifactError, match="cannot rebuild the model from its card"):
        A.load(_rewrite_npz(good, tmp_path / "b.npz", edit))
