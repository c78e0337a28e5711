"""The meta fields compress reads back from an artifact are checked like the rest of the manifest (issue 27, N17:
``meta.run`` as a list gave "expected str ... not list" from `compress bench`)."""

import json

import numpy as np
import pytest
import torch

from compress import models
from compress.cli import main
from compress.export import artifact as A


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("meta") / "t.npz"
    return A.save(models.create("mlp", hidden=(8,), input_size=8), path, codec="int8", compression="store",
                  meta={"run": "runs/x", "data_source": "default", "class_names": list("abcdefg")})


def edited(src, dst, key, value):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    manifest["meta"][key] = value
    manifest["checksum"] = A.checksum(manifest, arrays)
    np.savez(dst, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    return dst


@pytest.mark.parametrize("key,value", [("run", ["a", "b"]), ("run", 5), ("run", "x" * 5000),
                                       ("data_source", {"a": 1}), ("class_names", "abc"),
                                       ("class_names", [1, 2, 3]), ("normalizer", [0.5])])
def test_bad_meta_fields_are_named(saved, tmp_path, key, value):
    bad = edited(saved, tmp_path / "bad.npz", key, value)
    with pytest.raises(A.ArtifactError, match=f"meta.{key}"):
        A.load(bad)


def test_bench_on_such_a_file_is_one_line(saved, tmp_path, capsys):
    bad = edited(saved, tmp_path / "bad.npz", "run", ["a", "b"])
    assert main(["bench", str(bad), "--runtimes", "onnxruntime_int8", "--batch-sizes", "1"]) == 2
    err = capsys.readouterr().err
    assert "meta.run" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_user_meta_keys_stay_free(saved, tmp_path):
    ok = edited(saved, tmp_path / "ok.npz", "my_notes", {"anything": [1, 2]})
    A.load(ok)
