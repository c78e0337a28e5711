"""Huffman streams and sparse masks: exact round trips, sizes near the entropy bound, damaged input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.quant.entropy import (decode_stream, encode_stream, entropy_bits, huffman_decode, huffman_encode,
                                    huffman_lengths)
from compress.quant.sparse import decode_mask, encode_mask, gap_symbols, positions_from_gaps


def _geometric(n, p, k, seed=0):
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(p, size=n) - 1, k - 1).astype(np.uint8)


@pytest.mark.parametrize("n,p,bits", [(1, 0.5, 1), (7, 0.3, 2), (1000, 0.2, 4), (50_000, 0.05, 8)])
def test_stream_round_trips_exactly(n, p, bits):
    s = _geometric(n, p, 2 ** bits)
    data, info = encode_stream(s, bits)
    assert np.array_equal(decode_stream(data, info), s)
    assert data.size <= np.ceil(n * bits / 8)          # never worse than packing


def test_huffman_is_within_a_bit_per_symbol_of_entropy():
    s = _geometric(20_000, 0.3, 16)
    lengths = huffman_lengths(np.bincount(s, minlength=16))
    body, nbits = huffman_encode(s, lengths)
    bound = entropy_bits(s)
    assert bound <= nbits < bound + s.size
    assert np.array_equal(huffman_decode(body, nbits, s.size, lengths), s)


def test_code_lengths_are_limited_and_complete():
    counts = np.array([2 ** i for i in range(30)], dtype=np.int64)    # Fibonacci-like skew: would need 29 bits
    lengths = huffman_lengths(counts)
    assert lengths.max() <= 15
    assert sum(2.0 ** -int(n) for n in lengths if n) == 1.0


def test_single_symbol_and_empty_streams():
    s = np.full(100, 3, dtype=np.uint8)
    data, info = encode_stream(s, 4)
    assert np.array_equal(decode_stream(data, info), s)
    data, info = encode_stream(np.zeros(0, dtype=np.uint8), 4)
    assert decode_stream(data, info).size == 0


def test_damaged_huffman_stream_raises():
    s = _geometric(5000, 0.2, 16)
    data, info = encode_stream(s, 4)
    assert info["coder"] == "huffman"
    with pytest.raises(ValueError):
        decode_stream(data[:-3], info)
    with pytest.raises(ValueError):
        decode_stream(data, {**info, "count": info["count"] + 5})
    bad = data.copy()
    bad[0] = 0xFF      # code-length table: no longer a complete prefix code
    with pytest.raises(ValueError):
        decode_stream(bad, info)


def test_gaps_round_trip_with_escapes():
    positions = np.array([0, 3, 300, 301, 5000, 5001, 70_000])
    sym = gap_symbols(positions)
    assert (sym == 255).sum() == (296 // 255) + (4698 // 255) + (64998 // 255)
    assert np.array_equal(positions_from_gaps(sym, 70_001), positions)
    with pytest.raises(ValueError):
        positions_from_gaps(sym, 70_000)


@pytest.mark.parametrize("density,kind", [(0.5, "bitmask"), (0.02, "delta")])
def test_mask_picks_the_smaller_encoding(density, kind):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(64, 64, 3, 3, generator=g) < density
    data, info = encode_mask(mask)
    assert info["mask"] == kind
    assert data.size <= np.ceil(mask.numel() / 8)
    assert np.array_equal(decode_mask(data, info), mask.reshape(-1).numpy())
