"""Issue 16, class 1 (data files): a few bytes must not make a reader allocate gigabytes. Each case runs in a
fresh interpreter whose peak RSS is measured; all must end in DataError under 1 GB."""

from __future__ import annotations

import numpy as np

from peak_rss import peak_rss

GB = 2**30


def _load_in_subprocess(path):
    rss, outcome = peak_rss(f"from compress.data import load\nload({str(path)!r})")
    assert outcome.startswith("DataError"), outcome
    assert rss < GB, f"peak RSS {rss / 2**20:.0f} MiB"
    return outcome


def test_one_giant_label_is_refused(tmp_path):
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 10**12]))
    assert "class_names" in _load_in_subprocess(path)


def test_a_100_mb_header_of_commas_is_refused(tmp_path):
    path = tmp_path / "commas.csv"
    path.write_bytes(b"," * (100 * 2**20) + b"\n0,1 2 3 4\n")
    assert "header longer than" in _load_in_subprocess(path)


def test_a_gzip_bomb_is_refused(tmp_path):
    import zlib

    path = tmp_path / "bomb.csv.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"0" * (16 * 2**20)
    path.write_bytes(b"".join([c.compress(b"label,feature\n0,")] + [c.compress(chunk) for _ in range(16)]
                              + [c.flush()]))
    assert "decompression bomb" in _load_in_subprocess(path)


def test_100_mb_of_valid_pixels_loads_under_1_gb(tmp_path):
    """Three 4096x4096 images as CSV text (96 MiB): the fast parser reads them in pieces of a few MiB (int64
    scratch for one piece, uint8 kept), so the peak stays well under 1 GB (one int64 array for the whole chunk
    peaked at 1,037 MiB on this file)."""
    path = tmp_path / "big.csv"
    row = " ".join(["7"] * (4096 * 4096))
    with path.open("w") as f:
        f.write("label,feature\n")
        for k in range(3):
            f.write(f"{k},{row}\n")
    rss, outcome = peak_rss(f"from compress.data import load\nb = load({str(path)!r}, val_fraction=0.0)\n"
                            "assert b.train.x.shape == (3, 1, 4096, 4096) and int(b.train.x.max()) == 7",
                            timeout_s=300)
    assert outcome == "ok", outcome
    assert rss < GB, f"peak RSS {rss / 2**20:.0f} MiB"
