"""Issue 16, class 1 (artifacts): a few bytes must not make ``artifact.load`` allocate gigabytes.

Each case runs in a fresh interpreter whose peak RSS is measured; all must end in ArtifactError under 1 GB.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch

from compress import models
from compress.export import artifact as A
from peak_rss import peak_rss

GB = 2**30


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bomb") / "good.npz"
    return A.save(models.create("mobilenet_v2", width_mult=0.25), path, codec="int8")


def _rewrite(src, dst, edit):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    edit(manifest)
    manifest["checksum"] = A.checksum(manifest, arrays)   # unkeyed: anyone can recompute it
    np.savez(dst, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    return dst


def _load_in_subprocess(path):
    rss, outcome = peak_rss(f"from compress.export import artifact\nartifact.load({str(path)!r})")
    assert outcome.startswith("ArtifactError"), outcome
    assert rss < GB, f"peak RSS {rss / 2**20:.0f} MiB"
    return outcome


@pytest.mark.parametrize("key,value,match", [("width_mult", 30.0, "do not match the model"),
                                             ("depth_mult", 1e4, "depth_mult"),
                                             ("num_classes", 10**9, "do not match the model")])
def test_a_giant_card_is_refused_before_allocating(tmp_path, good, key, value, match):
    bad = _rewrite(good, tmp_path / "giant.npz", lambda m: m["model"]["card"]["build_args"].update({key: value}))
    assert match in _load_in_subprocess(bad)


def test_a_deflate_bomb_is_refused_before_inflating(tmp_path, good):
    """A member declaring 256 MiB of zeros deflated to ~256 KB (the issue's was 3 GiB; the rule is the same)."""
    bomb = tmp_path / "bomb.npz"
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, a in arrays.items():
            if k == "weights.float16":
                continue
            with zf.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, a)
        with zf.open("weights.float16.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f2", "fortran_order": False,
                                                     "shape": (128 * 2**20,)})
            chunk = bytes(16 * 2**20)
            for _ in range(16):
                f.write(chunk)
    assert bomb.stat().st_size < 2**20
    assert "decompression bomb" in _load_in_subprocess(bomb)


def test_an_npy_header_larger_than_the_manifest_says_is_refused(tmp_path, good):
    """A stored member whose npy header claims 2**40 values: refused from the header, before reading."""
    bad = tmp_path / "header.npz"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "weights.int8.npy":
                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, {"descr": "|i1", "fortran_order": False,
                                                           "shape": (2**40,)})
                data = buf.getvalue() + data[len(buf.getvalue()):]
            zout.writestr(info.filename, data)
    assert "the manifest says int8" in _load_in_subprocess(bad)
