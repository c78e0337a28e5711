"""Entropy coding of small-alphabet symbol streams (quantized indices, index gaps): canonical Huffman.

Deep Compression's third stage (Han et al. 2016, sec. 4): the quantized weights and the sparse index gaps are
far from uniform, so a variable-length prefix code stores them in fewer bits than fixed-width packing.

    stream = encode_stream(symbols, bits)          # uint8 array; the smaller of bit-packed and Huffman
    symbols = decode_stream(stream, info)          # info: the dict encode_stream returned beside the bytes

Huffman here is exact (decoding gives back every symbol; a damaged stream raises ValueError) and fast: both
directions are vectorized numpy. Decoding looks up the code at every bit position in a table, then finds the
chain of code starts by pointer doubling (log2 rounds of one gather each), instead of a Python loop over
symbols, one block of :data:`DECODE_BLOCK_BITS` bits at a time (so its scratch memory is bounded whatever the
stream's length). Codes are at most :data:`MAX_CODE_BITS` long (counts are halved until they are), so a
code-length table fits in 4 bits per symbol and the decoding table in ``2**15`` entries.

A stream's ``info`` is read from a file, so it is hostile: :func:`check_stream` holds it against the bytes
stored and the most symbols the caller can take (``max_count``, from the tensor's shape) before anything is
allocated; :func:`decode_stream` calls it, and so does the artifact manifest's validation.
"""

from __future__ import annotations

import heapq
import math
from typing import TypeGuard

import numpy as np

from compress.quant.codecs import pack_bits, unpack_bits

__all__ = ["MAX_CODE_BITS", "DECODE_BLOCK_BITS", "huffman_lengths", "huffman_encode", "huffman_decode",
           "encode_stream", "decode_stream", "check_stream", "entropy_bits"]

MAX_CODE_BITS = 15
DECODE_BLOCK_BITS = 2 ** 20   # bits decoded at once: ~30 bytes of scratch each (int32/int64 tables), ~32 MiB


def entropy_bits(symbols: np.ndarray) -> float:
    """Shannon bound: the fewest bits any symbol-by-symbol code of these frequencies can use, in total."""
    counts = np.bincount(np.asarray(symbols).reshape(-1).astype(np.int64))
    p = counts[counts > 0] / max(int(counts.sum()), 1)
    return float(-(counts[counts > 0] * np.log2(p)).sum())


def huffman_lengths(counts: np.ndarray, max_bits: int = MAX_CODE_BITS) -> np.ndarray:
    """Code length (bits, uint8) per symbol from symbol counts; unused symbols get 0. One used symbol gets 1 bit.
    Lengths are limited to ``max_bits`` by halving the counts (keeping them >= 1) until they fit."""
    counts = np.asarray(counts, dtype=np.int64)
    used = np.nonzero(counts > 0)[0]
    lengths = np.zeros(len(counts), dtype=np.uint8)
    if len(used) == 1:
        lengths[used] = 1
        return lengths
    c = counts.copy()
    while True:
        heap: list[tuple[int, int, tuple[int, ...]]] = [(int(c[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        depth = dict.fromkeys((int(s) for s in used), 0)
        while len(heap) > 1:
            w1, t1, a = heapq.heappop(heap)
            w2, t2, b = heapq.heappop(heap)
            for s in a + b:
                depth[s] += 1
            heapq.heappush(heap, (w1 + w2, min(t1, t2), a + b))
        if max(depth.values()) <= max_bits:
            break
        c[used] = np.maximum(c[used] // 2, 1)
    for s, d in depth.items():
        lengths[s] = d
    return lengths


def _canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical Huffman codes (int64) from lengths: shorter codes first, ties by symbol."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    order = sorted((int(n), s) for s, n in enumerate(lengths) if n > 0)
    code, prev = 0, order[0][0] if order else 0
    for n, s in order:
        code <<= n - prev
        codes[s], prev = code, n
        code += 1
    return codes


def _check_lengths(lengths: np.ndarray) -> None:
    """Kraft's inequality with equality (a complete prefix code), or a single 1-bit code."""
    used = lengths[lengths > 0].astype(np.int64)
    if used.size == 0 or used.max() > MAX_CODE_BITS:
        raise ValueError("Huffman table: code lengths missing or longer than 15 bits")
    kraft = int((1 << (MAX_CODE_BITS - used)).sum())
    if kraft != 1 << MAX_CODE_BITS and not (used.size == 1 and used[0] == 1):
        raise ValueError("Huffman table: code lengths do not form a complete prefix code")


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """``(packed bytes, number of bits)``: each symbol's canonical code, most significant bit first."""
    s = np.asarray(symbols).reshape(-1).astype(np.int64)
    if s.size and (s.max() >= len(lengths) or (lengths[s] == 0).any()):
        raise ValueError("huffman_encode: a symbol has no code")
    codes, n = _canonical_codes(lengths)[s], lengths[s].astype(np.int64)
    nbits = int(n.sum())
    width = int(n.max()) if s.size else 0
    j = np.arange(width, dtype=np.int64)
    shift = n[:, None] - 1 - j[None, :]
    bits = ((codes[:, None] >> np.maximum(shift, 0)) & 1).astype(np.uint8)
    bits = bits[shift >= 0]          # row-major: each code's bits in order, codes one after another
    return np.packbits(bits), nbits


def huffman_decode(packed: np.ndarray, nbits: int, count: int, lengths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`huffman_encode`: ``count`` symbols (int64). Raises ValueError on a damaged stream.
    Scratch memory: ``nbits`` bytes plus about 30 bytes per bit of one block (:data:`DECODE_BLOCK_BITS`)."""
    _check_lengths(lengths)
    packed = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if nbits < 0 or count < 0 or packed.size != math.ceil(nbits / 8) or nbits < count:
        raise ValueError(f"Huffman stream: {packed.size} bytes cannot hold {nbits} bits / {count} symbols")
    if nbits > MAX_CODE_BITS * count:
        raise ValueError(f"Huffman stream: {nbits} bits for {count} symbols, more than {MAX_CODE_BITS} bits each")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    width = int(lengths.max())
    bits = np.zeros(nbits + width, dtype=np.uint8)
    bits[:nbits] = np.unpackbits(packed, count=nbits)
    sym_table = np.full(1 << width, -1, dtype=np.int64)
    len_table = np.zeros(1 << width, dtype=np.int64)
    codes = _canonical_codes(lengths)
    for s in np.nonzero(lengths)[0]:
        lo = int(codes[s]) << (width - int(lengths[s]))
        hi = lo + (1 << (width - int(lengths[s])))
        sym_table[lo:hi], len_table[lo:hi] = s, lengths[s]
    out = np.empty(count, dtype=np.int64)
    done, pos = 0, 0
    while pos < nbits:
        end = min(pos + DECODE_BLOCK_BITS, nbits)
        starts, window = _block_starts(bits, pos, end, width, len_table)
        if done + starts.size > count:
            raise ValueError(f"Huffman stream: decodes to more than {count} symbols")
        out[done:done + starts.size] = sym_table[window]
        done += starts.size
        pos = int(starts[-1]) + int(len_table[window[-1]])
    if done != count or pos != nbits:
        raise ValueError(f"Huffman stream: decodes to {done} symbols in {pos} bits, expected {count} in {nbits}")
    if (out < 0).any():
        raise ValueError("Huffman stream: invalid code")
    return out


def _block_starts(bits: np.ndarray, pos: int, end: int, width: int, len_table: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The code starts in ``[pos, end)`` on the chain from ``pos`` (a code start), and the ``width`` bits read
    at each as an integer. Raises ValueError for an invalid code on the chain."""
    n = end - pos
    window = np.zeros(n, dtype=np.int32)        # the next `width` bits at every position, as an integer
    for j in range(width):
        window = (window << 1) | bits[pos + j:end + j]
    jump = np.minimum(np.arange(n) + len_table[window], n)    # next code start; n = past the block
    jump = np.append(jump, n)
    on_chain = np.zeros(n + 1, dtype=bool)
    on_chain[0] = True
    for _ in range(max(1, math.ceil(math.log2(n + 1)))):      # reach next^i(0) for all i < 2**rounds
        on_chain[jump[on_chain]] = True
        jump = jump[jump]
    local = np.nonzero(on_chain[:n])[0]
    window = window[local]
    if (len_table[window] == 0).any():
        raise ValueError("Huffman stream: invalid code")
    return local + pos, window


# ---------------------------------------------------------------------------------------------- streams
def _pack_nibbles(lengths: np.ndarray) -> np.ndarray:
    return pack_bits(lengths.astype(np.uint8), 4)


def encode_stream(symbols: np.ndarray, bits: int, *, entropy: bool = True) -> tuple[np.ndarray, dict]:
    """Store symbols in ``[0, 2**bits)``: ``(uint8 bytes, info)``. ``info["coder"]`` is ``"pack"`` (fixed
    ``bits`` per symbol) or ``"huffman"`` (a 4-bit code-length table for symbols up to the largest used, then
    the codes), whichever is smaller; ``entropy=False`` always packs. ``info`` is JSON and :func:`decode_stream`
    needs it."""
    s = np.asarray(symbols).reshape(-1)
    count = int(s.size)
    packed = pack_bits(s, bits)
    best = (packed, {"coder": "pack", "bits": bits, "count": count})
    if entropy and count:
        counts = np.bincount(s.astype(np.int64))
        lengths = huffman_lengths(counts)
        table = _pack_nibbles(lengths)
        body, nbits = huffman_encode(s, lengths)
        if table.size + body.size < packed.size:
            best = (np.concatenate([table, body]),
                    {"coder": "huffman", "bits": bits, "count": count, "alphabet": len(lengths), "nbits": nbits})
    return best


def check_stream(info: object, nbytes: int, *, max_count: int, bits: int | None = None) -> int:
    """The symbol count of a stream described by ``info`` (:func:`encode_stream`'s, read from a file), after
    checking it against the ``nbytes`` bytes stored and ``max_count``, the most symbols the caller takes
    (``bits``: the width the caller expects, if any). Allocates nothing: every field must be an int in range
    and the stored bytes exactly what the count and widths need. Raises ValueError naming the field."""
    if not isinstance(info, dict) or info.get("coder") not in ("pack", "huffman"):
        raise ValueError(f"stream info must name its coder, pack or huffman: {str(info)[:120]}")
    width, count = info.get("bits"), info.get("count")
    if not (_is_int(width) and 1 <= width <= 8) or (bits is not None and width != bits):
        raise ValueError(f"stream bits must be an integer from 1 to 8{'' if bits is None else f' ({bits} here)'}, "
                         f"got {str(width)[:40]}")
    if not (_is_int(count) and 0 <= count <= max_count):
        raise ValueError(f"stream count {str(count)[:40]} is not an integer from 0 to {max_count}, the most "
                         f"symbols it may hold here")
    if info["coder"] == "pack":
        need = math.ceil(count * width / 8)
    else:
        alphabet, nbits = info.get("alphabet"), info.get("nbits")
        if not (_is_int(alphabet) and 1 <= alphabet <= 2 ** width):
            raise ValueError(f"Huffman stream: alphabet {str(alphabet)[:40]} is not an integer from 1 to "
                             f"{2 ** width} for {width}-bit values")
        if not (_is_int(nbits) and count <= nbits <= MAX_CODE_BITS * count):
            raise ValueError(f"Huffman stream: nbits {str(nbits)[:40]} is not an integer from {count} to "
                             f"{MAX_CODE_BITS * count} for {count} symbols")
        need = math.ceil(alphabet / 2) + math.ceil(nbits / 8)
    if nbytes != need:
        raise ValueError(f"stream of {nbytes} bytes, its info needs {need} ({info['coder']}, {count} symbols of "
                         f"{width} bits)")
    return count


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def decode_stream(data: np.ndarray, info: dict, *, max_count: int | None = None) -> np.ndarray:
    """Symbols (uint8 for ``bits`` <= 8) from :func:`encode_stream`'s output; at most ``max_count`` of them
    (default: as many as the stored bytes can hold, 8 per byte). Raises ValueError if damaged or if ``info``
    disagrees with the bytes (:func:`check_stream`)."""
    data = np.asarray(data, dtype=np.uint8).reshape(-1)
    count = check_stream(info, data.size, max_count=8 * data.size if max_count is None else max_count)
    bits = int(info["bits"])
    if info["coder"] == "pack":
        return unpack_bits(data, bits, count)
    alphabet = int(info["alphabet"])
    table_bytes = math.ceil(alphabet / 2)
    lengths = unpack_bits(data[:table_bytes], 4, alphabet)
    return huffman_decode(data[table_bytes:], int(info["nbits"]), count, lengths).astype(np.uint8)
