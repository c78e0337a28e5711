"""Preprocessing travels with the model: input shape, normalization and class names in artifacts (save options,
read back with describe) and in ONNX files (metadata, and a normalization node when asked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compress import models
from compress.data.bundle import Normalizer
from compress.export import Preprocessing, describe, load_model
from compress.export import artifact as A

LEGACY = Path(__file__).parent / "legacy"
NORMALIZER = Normalizer([0.4], [0.2])


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return models.create("cnn", channels=[8, 16], num_classes=3, input_size=16).eval()


def test_save_options_are_read_back(tmp_path, cnn):
    path = A.save(cnn, tmp_path / "m.npz", normalizer=NORMALIZER, class_names=["a", "b", "c"])
    info = describe(path)
    assert info.architecture == "card" and info.name == "cnn" and info.codec == "fp16"
    assert info.input_shape == (1, 16, 16)                       # from the card
    assert info.normalizer.to_dict() == NORMALIZER.to_dict() and info.input_normalizer is info.normalizer
    assert info.class_names == ("a", "b", "c") and info.num_classes == 3 and info.dynamic_batch
    assert json.loads(json.dumps(info.to_dict()))["class_names"] == ["a", "b", "c"]
    assert "mean [0.4] std [0.2]" in info.summary()
    manifest, _ = A.read(path)
    assert manifest["preprocessing"] == {"normalizer": NORMALIZER.to_dict(), "class_names": ["a", "b", "c"]}
    model, same = load_model(path)
    assert same.to_dict() == info.to_dict() and not model.training


def test_without_options_the_manifest_is_as_before(tmp_path, cnn):
    manifest, _ = A.read(A.save(cnn, tmp_path / "m.npz"))
    assert "preprocessing" not in manifest
    info = describe(tmp_path / "m.npz")
    assert info.normalizer is None and info.class_names is None and info.num_classes == 3


def test_older_files_keep_it_in_meta(tmp_path, cnn):
    """compress export before the preprocessing entry wrote the normalizer and class names into meta."""
    path = A.save(cnn, tmp_path / "old.npz", meta={"normalizer": NORMALIZER.to_dict(), "class_names": ["x", "y", "z"]})
    info = describe(path)
    assert info.class_names == ("x", "y", "z") and info.normalizer.mean == (0.4,)
    legacy = describe(LEGACY / "mobilenet_fp16.npz")
    assert legacy.input_shape is not None and legacy.architecture == "card"


def test_program_artifacts_know_their_shape_and_classes(tmp_path):
    body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    path = A.save(body, tmp_path / "p.npz", input_shape=(3, 2, 2))
    info = describe(path)
    assert info.architecture == "program" and info.input_shape == (3, 2, 2) and info.num_classes == 5
    assert info.name.endswith("Sequential") and info.dynamic_batch


@pytest.mark.parametrize("options,error,match", [
    ({"normalizer": {"mean": [0.5], "std": [0.0]}}, ValueError, "std > 0"),
    ({"normalizer": {"mean": [0.5, 0.5], "std": [1, 1]}, "input_shape": (1, 8, 8)}, ValueError, "2 means for 1"),
    ({"normalizer": {"mean": [0.5]}}, ValueError, "mean"),
    ({"normalizer": [0.5, 0.2]}, TypeError, "normalizer"),
    ({"class_names": "abc"}, TypeError, "class_names"),
    ({"class_names": []}, ValueError, "1 to"),
    ({"input_shape": (1, 0, 8)}, ValueError, "positive"),
])
def test_bad_options_name_the_option(options, error, match):
    with pytest.raises(error, match=match):
        Preprocessing.of(**options)


def test_class_names_must_match_the_card(tmp_path, cnn):
    with pytest.raises(ValueError, match="lists 2 classes but .* has 3 outputs"):
        A.save(cnn, tmp_path / "m.npz", class_names=["a", "b"])


@pytest.mark.parametrize("entry", [
    "not a dict", {"input_shape": [1, -4, 4]}, {"input_shape": [1] * 9}, {"normalizer": {"mean": "x", "std": []}},
    {"normalizer": {"mean": [float("nan")], "std": [1.0]}}, {"class_names": [1, 2]},
    {"class_names": ["x" * 10_000]}, {"normalizer": {"mean": [0.1], "std": [1.0], "code": "os.system"}},
])
def test_hostile_preprocessing_entries_are_artifact_errors(tmp_path, cnn, entry):
    path = A.save(cnn, tmp_path / "m.npz", codec="fp32")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    manifest["preprocessing"] = entry
    manifest["checksum"] = A.checksum(manifest, arrays)
    np.savez(path, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    for reader in (A.read, describe, A.load):
        with pytest.raises(A.ArtifactError, match="preprocessing"):
            reader(path)


# ------------------------------------------------------------------ ONNX
def test_onnx_metadata_and_normalization_node(tmp_path, cnn):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from compress.onnx import OnnxModel, export_onnx, read_onnx, write_onnx_metadata

    plain = export_onnx(cnn, tmp_path / "plain.onnx", (1, 16, 16), normalizer=NORMALIZER, class_names=["a", "b", "c"])
    inside = export_onnx(cnn, tmp_path / "inside.onnx", (1, 16, 16), normalizer=NORMALIZER,
                         class_names=["a", "b", "c"], include_normalizer=True)
    meta = read_onnx(plain).metadata
    assert json.loads(meta["compress.input_shape"]) == [1, 16, 16] and meta["compress.input"] == "normalized"
    assert json.loads(meta["compress.mean"]) == [0.4] and json.loads(meta["compress.std"]) == [0.2]
    assert json.loads(meta["compress.class_names"]) == ["a", "b", "c"] and "compress.version" in meta
    info = read_onnx(inside)
    assert info.pixels and info.metadata["compress.input"] == "pixels"
    ops = [n.op_type for n in onnx.load(str(inside)).graph.node]
    assert "Sub" in ops and "Div" in ops and ops.index("Div") < ops.index("Conv")
    assert "Sub" not in [n.op_type for n in onnx.load(str(plain)).graph.node]

    images = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    with torch.no_grad():
        want = cnn(NORMALIZER(images))
    for path in (plain, inside):
        model, described = load_model(path)
        _, normalizer = described.require_input()
        torch.testing.assert_close(model(normalizer(images)), want, rtol=1e-4, atol=1e-5)
    assert describe(inside).input_normalizer.mean == ()          # scale to [0, 1]; the graph does the rest

    write_onnx_metadata(plain, {"mine": "kept?"})
    write_onnx_metadata(plain, {"compress.class_names": '["p", "q", "r"]'})
    after = read_onnx(plain)
    assert after.metadata["mine"] == "kept?" and after.class_names == ("p", "q", "r")
    assert OnnxModel(plain).info.input_shape == (1, 16, 16)


def test_onnx_model_renames_foreign_inputs_and_copies(tmp_path, cnn):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import copy

    from compress.onnx import OnnxModel, export_onnx

    path = export_onnx(cnn, tmp_path / "m.onnx", (1, 16, 16))
    proto = onnx.load(str(path))
    proto.graph.input[0].name = "pixel_values"
    for node in proto.graph.node:
        node.input[:] = ["pixel_values" if n == "input" else n for n in node.input]
    onnx.save(proto, str(tmp_path / "foreign.onnx"))
    model = OnnxModel(tmp_path / "foreign.onnx")
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(copy.deepcopy(model)(x), cnn(x), rtol=1e-4, atol=1e-5)
    written = export_onnx(model, tmp_path / "again.onnx", (1, 16, 16))
    assert onnx.load(str(written)).graph.input[0].name == "input"
    with pytest.raises(ValueError, match="takes inputs of shape"):
        export_onnx(model, tmp_path / "bad.onnx", (3, 16, 16))


@pytest.mark.parametrize("props,match", [({"compress.normalizer": "{oops"}, "not JSON"),
                                         ({"compress.normalizer": '{"mean": [1], "std": [0]}'}, "malformed"),
                                         ({"compress.class_names": "[1, 2]"}, "class_names"),
                                         ({"compress.input_shape": "[-1]"}, "input_shape")])
def test_malformed_onnx_metadata_is_one_value_error(tmp_path, cnn, props, match):
    pytest.importorskip("onnx")
    from compress.onnx import export_onnx, read_onnx, write_onnx_metadata

    path = export_onnx(cnn, tmp_path / "m.onnx", (1, 16, 16), verify=False)
    write_onnx_metadata(path, props)
    with pytest.raises(ValueError, match=match):
        read_onnx(path)
