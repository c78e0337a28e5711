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
