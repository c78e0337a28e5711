"""Sparse storage: where the nonzero weights of a pruned tensor are, in as few bytes as possible.

Two encodings of a boolean mask over a flattened tensor, and :func:`encode_mask` keeps the smaller:
    bitmask   one bit per element (``ceil(n / 8)`` bytes); best above roughly 10-20% density
    delta     the gaps between successive kept positions (Han et al. 2016, sec. 2: relative indices), as
              8-bit symbols with an escape: a gap ``g`` is ``g // 255`` escape symbols (255 = "255 zeros, no
              weight yet") then ``g % 255``; the symbols are entropy coded (:mod:`compress.quant.entropy`)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from compress.quant.codecs import pack_bits, unpack_bits
from compress.quant.entropy import decode_stream, encode_stream

__all__ = ["GAP_ESCAPE", "gap_symbols", "positions_from_gaps", "encode_mask", "decode_mask"]

GAP_ESCAPE = 255


def gap_symbols(positions: np.ndarray) -> np.ndarray:
    """uint8 symbols for increasing positions: per position the zeros skipped since the previous one."""
    p = np.asarray(positions, dtype=np.int64)
    gaps = np.diff(p, prepend=-1) - 1
    escapes = gaps // GAP_ESCAPE
    out = np.full(int(escapes.sum()) + p.size, GAP_ESCAPE, dtype=np.uint8)
    ends = np.cumsum(escapes + 1) - 1
    out[ends] = gaps % GAP_ESCAPE
    return out


def positions_from_gaps(symbols: np.ndarray, numel: int) -> np.ndarray:
    """Inverse of :func:`gap_symbols`; raises ValueError if a position falls outside ``numel`` elements."""
    s = np.asarray(symbols, dtype=np.int64)
    final = s < GAP_ESCAPE
    total = np.cumsum(np.where(final, s + 1, GAP_ESCAPE))
    positions = total[final] - 1
    if positions.size and positions[-1] >= numel or (s.size and not final[-1]):
        raise ValueError(f"sparse index stream points outside a tensor of {numel} elements")
    return positions


def encode_mask(mask: torch.Tensor | np.ndarray, *, entropy: bool = True) -> tuple[np.ndarray, dict]:
    """``(uint8 bytes, info)`` for a boolean mask (any shape; flattened): the smaller of a bitmask and
    delta-coded positions. ``info["mask"]`` names the encoding; :func:`decode_mask` reads it back."""
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    m = m.reshape(-1).astype(bool)
    bitmask = pack_bits(m.astype(np.uint8), 1)
    best = (bitmask, {"mask": "bitmask", "numel": int(m.size)})
    data, info = encode_stream(gap_symbols(np.nonzero(m)[0]), 8, entropy=entropy)
    if data.size < bitmask.size:
        best = (data, {"mask": "delta", "numel": int(m.size), "stream": info})
    return best


def decode_mask(data: np.ndarray, info: dict) -> np.ndarray:
    """Boolean mask (flat, ``info["numel"]`` long) from :func:`encode_mask`'s output."""
    numel = int(info["numel"])
    if info["mask"] == "bitmask":
        if np.asarray(data).size != math.ceil(numel / 8):
            raise ValueError(f"bitmask of {np.asarray(data).size} bytes for {numel} elements")
        return unpack_bits(data, 1, numel).astype(bool)
    if info["mask"] != "delta":
        raise ValueError(f"unknown mask encoding {info['mask']!r}")
    positions = positions_from_gaps(decode_stream(data, info["stream"]), numel)
    out = np.zeros(numel, dtype=bool)
    out[positions] = True
    return out
