"""Issue 27, "a small file or argument takes gigabytes": each reproduction runs in a fresh interpreter whose peak
RSS is measured; each must end in one named refusal (or, for the int8 runtimes, a result) under 1 GB."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress import models
from compress.export import artifact as A
from compress.quant.plan import LayerPlan, Plan
from peak_rss import peak_rss

GB = 2**30
BIG = 32 * 2**20    # bytes of zeros appended to a stream: ~32 KB deflated, 256M symbols at one bit each


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    torch.manual_seed(0)
    model = models.create("cnn", width_mult=0.25, num_classes=3, input_size=16).eval()
    g = torch.Generator().manual_seed(1)
    names = [n for n, p in model.named_parameters() if p.ndim > 1 and p.numel() >= 256]
    with torch.no_grad():
        for n in names:
            p = model.get_parameter(n)
            p.mul_(torch.rand(p.shape, generator=g) < 0.05)
    plan = Plan([LayerPlan(n, ["kmeans3", "kmeans1"][i % 2]) for i, n in enumerate(names)])
    return A.save(model, tmp_path_factory.mktemp("i27") / "p.npz", plan=plan)


def _point_at_zeros(src, dst, pick, info, head=b""):
    """``dst``: ``src`` with one coded stream (``pick(meta) -> (dict holding the info, key, role)``) re-pointed at
    BIG appended bytes (``head``, then zeros), its info replaced by ``info(nbytes)``; checksum recomputed."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    row = next(r for r in manifest["tensors"] if r[1] == "coded" and pick(r[3]) is not None)
    holder, key, role = pick(row[3])
    group = "weights.uint8" if role == "data" else "indices.uint8"
    offset = arrays[group].size
    block = np.zeros(BIG, np.uint8)
    block[:len(head)] = np.frombuffer(head, np.uint8)
    arrays[group] = np.concatenate([arrays[group], block])
    manifest["arrays"][group]["count"] = int(arrays[group].size)
    row[4] = [s if s[0] != role else [role, group, offset, BIG] for s in row[4]]
    holder[key] = info(BIG)
    manifest["checksum"] = A.checksum(manifest, arrays)
    np.savez_compressed(dst, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    return dst


def _refused(code, *words):
    rss, outcome = peak_rss(code)
    assert rss < GB, f"peak RSS {rss / 2**20:.0f} MiB ({outcome[:200]})"
    for w in words:
        assert w in outcome, outcome
    return rss


def _values(meta):
    return (meta, "values", "data") if meta.get("values") else None


def test_a_huffman_stream_declaring_a_giant_count_is_refused(tmp_path, planned):
    """N2: 22 KB decoded to 3.3 GB. A valid code table (eight 3-bit codes), then zeros: every code is symbol 0."""
    def pick(meta):
        return (meta, "values", "data") if meta.get("values") and meta["bits"] == 3 else None
    bad = _point_at_zeros(planned, tmp_path / "huff.npz", pick, lambda n: {
        "coder": "huffman", "bits": 3, "count": 2 * n, "alphabet": 8, "nbits": 8 * (n - 4)}, head=b"\x33" * 4)
    assert bad.stat().st_size < 200_000
    _refused(f"from compress.export import artifact\nartifact.load({str(bad)!r})", "ArtifactError", "stream count")


def test_a_one_bit_packed_stream_declaring_a_giant_count_is_refused(tmp_path, planned):
    """N2: a 75 KB 1-bit packed stream took 4.8 GB."""
    def pick(meta):
        return (meta, "values", "data") if meta.get("values") and meta["bits"] == 1 else None
    bad = _point_at_zeros(planned, tmp_path / "pack.npz", pick,
                          lambda n: {"coder": "pack", "bits": 1, "count": 8 * n})
    _refused(f"from compress.export import artifact\nartifact.load({str(bad)!r})", "ArtifactError", "stream count")


def test_a_sparse_mask_stream_declaring_a_giant_count_is_refused(tmp_path, planned):
    def pick(meta):
        return (meta["mask"], "stream", "mask") if (meta.get("mask") or {}).get("mask") == "delta" else None
    bad = _point_at_zeros(planned, tmp_path / "mask.npz", pick,
                          lambda n: {"coder": "pack", "bits": 8, "count": n})
    _refused(f"from compress.export import artifact\nartifact.load({str(bad)!r})", "ArtifactError", "stream count")


@pytest.mark.parametrize("bits", [10**9, 10**18])
def test_a_giant_bit_width_is_refused_at_once(tmp_path, planned, bits):
    """N3: 10**18 hung computing 2**bits; 10**9 took 740 MB."""
    bad = _point_at_zeros(planned, tmp_path / "bits.npz", _values, lambda n: {
        "coder": "huffman", "bits": bits, "count": n, "alphabet": 8, "nbits": 8 * n})
    _refused(f"from compress.export import artifact\nartifact.load({str(bad)!r})", "ArtifactError", "bits")


def test_a_card_input_size_of_20000_is_refused_by_bench(tmp_path, planned):
    """N5 (artifact): bench took 1.9 GB, then tried 12.8 GB."""
    with np.load(planned) as z:
        arrays = {k: z[k] for k in z.files}
    manifest = json.loads(arrays.pop("manifest").tobytes())
    manifest["model"]["card"]["build_args"]["input_size"] = 20000
    manifest.pop("preprocessing", None)
    manifest["checksum"] = A.checksum(manifest, arrays)
    bad = tmp_path / "card.npz"
    np.savez(bad, manifest=np.frombuffer(json.dumps(manifest).encode(), np.uint8), **arrays)
    _refused(f"from compress.cli import main\nassert main(['bench', {str(bad)!r}, '--runtimes', 'eager']) == 2",
             "ok")


def test_a_run_whose_card_says_input_size_20000_is_refused(tmp_path):
    """N5 (run folder): prune tried 25.6 GB."""
    from compress import data, train

    bundle = data.load("synthetic:n=24,classes=2,size=16")
    out = tmp_path / "run"
    train.fit(models.create("cnn", width_mult=0.25, num_classes=2, input_size=16), bundle,
              train.TrainConfig(epochs=1, augment=False), out=out, progress=False)
    config = json.loads((out / "config.json").read_text())
    config["model"]["card"]["build_args"]["input_size"] = 20000
    (out / "config.json").write_text(json.dumps(config))
    _refused(f"from compress.train import load_run\nload_run({str(out)!r})", "ValueError", "config.json",
             "input_size")


def test_ten_million_class_names_are_refused(tmp_path):
    """N6: a 13 KB npz with 10,000,000 class names took 6.4 GB on compress train."""
    path = tmp_path / "names.npz"
    np.savez_compressed(path, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]),
                        class_names=np.full(10_000_000, "a", dtype="<U1"))
    assert path.stat().st_size < 200_000
    _refused(f"from compress.data import load\nload({str(path)!r})", "DataError", "class_names", "100000")


def test_npz_images_over_4096x4096_are_refused(tmp_path):
    """N7: a 61 KB npz holding two 5600x5600 images took 7.2 GB."""
    path = tmp_path / "big.npz"
    np.savez_compressed(path, x=np.zeros((2, 5600, 5600), np.uint8), y=np.array([0, 1]))
    assert path.stat().st_size < 200_000
    _refused(f"from compress.data import load\nload({str(path)!r})", "DataError", "5600x5600")


def test_a_thousand_seeds_are_refused_before_any_work(tmp_path):
    """N13: --seeds 1000 took 5.8 GB, then a RuntimeError."""
    out = tmp_path / "r"
    _refused("from compress.cli import main\n"
             f"main(['train', '--model', 'cnn', '--width', '0.25', '--seeds', '1000', '--data', 'synthetic', "
             f"'--out', {str(out)!r}])", "SystemExit: 2")
    assert not out.exists()


@pytest.mark.parametrize("args", [["--batch-sizes", "1000000000"], ["--input", "1x100000x100000"],
                                  ["--input", "3x4096x4096", "--batch-sizes", "1,32"]])
def test_bench_refuses_inputs_over_the_limit_before_allocating(args):
    """N14: an allocation traceback."""
    _refused(f"from compress.cli import main\nassert main(['bench', 'cnn', '--runtimes', 'eager', *{args!r}]) == 2",
             "ok")


@pytest.mark.parametrize("runtime", ["torch_int8", "onnxruntime_int8"])
def test_int8_runtimes_calibrate_a_large_image_under_1_gb(runtime):
    """N14: the int8 runtimes took 2.5-7 GB for one 1x512x512 image (64 calibration images in one pass)."""
    if runtime == "onnxruntime_int8":
        pytest.importorskip("onnxruntime")
    rss, outcome = peak_rss(
        "from compress import models\nfrom compress.bench import measure\nimport torch\ntorch.manual_seed(0)\n"
        "m = models.create('cnn', width_mult=0.5, input_size=512)\n"
        f"(r,) = measure(m, (1, 512, 512), runtime={runtime!r}, batch_sizes=[1], warmup=0, repeats=1)\n"
        "assert r.error is None, r.error", timeout_s=600)
    assert outcome == "ok", outcome
    assert rss < GB, f"peak RSS {rss / 2**20:.0f} MiB"
