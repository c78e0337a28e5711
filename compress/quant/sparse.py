"""Sparse storage: where the nonzero weights of a pruned tensor are, in as few bytes as possible.

Two encodings of a boolean mask over a flattened tensor, and :func:`encode_mask` keeps the smaller:
    bitmask   one bit per element (``ceil(n / 8)`` bytes); best above roughly 10-20% density
    delta     the gaps between successive kept positions (Han et al. 2016, sec. 2: relative indices), as
              8-bit symbols with an escape: a gap ``g`` is ``g // 255`` escape symbols (255 = "255 zeros, no
              weight yet") then ``g % 255``; the symbols are entropy coded (:mod:`compress.quant.entropy`)

A mask's ``info`` is read from a file: :func:`check_mask` holds it against the tensor's element count and the
bytes stored before anything is allocated (:func:`decode_mask` calls it; so does the artifact manifest's
validation).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from compress.quant.codecs import pack_bits, unpack_bits
from compress.quant.entropy import check_stream, decode_stream, encode_stream

__all__ = ["GAP_ESCAPE", "gap_symbols", "positions_from_gaps", "encode_mask", "decode_mask", "check_mask",
           "max_gap_symbols"]

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


def max_gap_symbols(numel: int) -> int:
    """The most gap symbols a mask over ``numel`` elements takes: one per kept position plus one escape per 255
    skipped zeros."""
    return numel + numel // GAP_ESCAPE


def check_mask(info: object, nbytes: int, numel: int) -> None:
    """Raise ValueError unless ``info`` (:func:`encode_mask`'s, read from a file) describes a mask over ``numel``
    elements stored in ``nbytes`` bytes. Allocates nothing."""
    if not isinstance(info, dict) or info.get("mask") not in ("bitmask", "delta"):
        raise ValueError(f"mask info must name its encoding, bitmask or delta: {str(info)[:120]}")
    if info.get("numel") != numel or isinstance(info.get("numel"), bool):
        raise ValueError(f"mask covers {str(info.get('numel'))[:40]} elements, the tensor has {numel}")
    if info["mask"] == "bitmask":
        if nbytes != math.ceil(numel / 8):
            raise ValueError(f"bitmask of {nbytes} bytes for {numel} elements")
    else:
        check_stream(info.get("stream"), nbytes, max_count=max_gap_symbols(numel), bits=8)


def decode_mask(data: np.ndarray, info: dict) -> np.ndarray:
    """Boolean mask (flat, ``info["numel"]`` long) from :func:`encode_mask`'s output. Raises ValueError when
    ``info`` disagrees with the bytes (:func:`check_mask`) or the stream is damaged."""
    numel = info.get("numel") if isinstance(info, dict) else None
    if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        raise ValueError(f"mask info must give numel, a non-negative int: {str(info)[:120]}")
    check_mask(info, np.asarray(data).size, numel)
    if info["mask"] == "bitmask":
        return unpack_bits(data, 1, numel).astype(bool)
    positions = positions_from_gaps(decode_stream(data, info["stream"], max_count=max_gap_symbols(numel)), numel)
    out = np.zeros(numel, dtype=bool)
    out[positions] = True
    return out
