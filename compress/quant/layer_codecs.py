"""Per-layer codecs for mixed-precision, sparse, entropy-coded artifacts: one tensor in, one ``Encoded`` out.

A :class:`LayerCodec` is named by a short label:
    fp16 / fp32     floats (the nonzero ones only, when that is smaller)
    int2 .. int8    symmetric linear, one scale per output channel (:mod:`compress.quant.linear`); int8 and int4
                    are the int8 / int4 per-channel codecs
    kmeans1 .. 8    weight sharing: a codebook of ``2**bits`` entries over the nonzero weights (Han et al. 2016);
                    weights that already take at most ``2**bits`` distinct values (after centroid fine-tuning)
                    keep exactly those values

Zeros (pruned weights) are stored as a mask (:mod:`compress.quant.sparse`) when that is smaller than storing
them; the quantized symbols go through :func:`compress.quant.entropy.encode_stream` (bit-packed or Huffman,
whichever is smaller). A tensor stored this way is ``Encoded(kind="coded")`` with arrays ``data`` (the symbol
stream, or float16 values), ``scale`` or ``codebook`` and ``mask``, and everything needed to decode it in
``meta``; a dense int8 tensor without entropy coding stays the plain ``int8`` kind (int8 values + per-channel
scales). :func:`decode_any` decodes every kind an artifact holds.

What a file declares about a tensor (kind, shape, codec fields, stream and mask infos) is checked by
:func:`check_encoded` against the element counts of the arrays it stores, before anything is allocated from it:
a stream never decodes to more symbols than the shape has elements, and its bytes must be exactly what its
count and bit width need. :func:`decode_any` calls it; the artifact manifest's validation calls it at parse time.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeGuard

import numpy as np
import torch

from compress.quant.checks import require_finite
from compress.quant.codecs import Encoded, decode_state_dict, decode_tensor, kmeans_codebook, nearest_index, to_fp16
from compress.quant.entropy import check_stream, decode_stream, encode_stream
from compress.quant.linear import dequantize_linear, qmax, quantize_linear
from compress.quant.sparse import check_mask, decode_mask, encode_mask

__all__ = ["LayerCodec", "encode_coded", "decode_coded", "decode_any", "decode_all", "encoded_bytes", "entropy_report",
           "check_encoded", "KINDS"]

KINDS = ("raw", "float", "int8", "kmeans", "coded")            # every Encoded.kind an artifact holds
_CODED_BITS = {"float": (16, 32), "linear": tuple(range(2, 9)), "kmeans": tuple(range(1, 9))}

_SCALE_DTYPE = torch.float16


@dataclass(frozen=True)
class LayerCodec:
    """How one layer's weight is stored: ``scheme`` float | linear | kmeans, ``bits`` per stored value."""

    scheme: str
    bits: int

    @classmethod
    def parse(cls, text: "str | LayerCodec") -> "LayerCodec":
        if isinstance(text, LayerCodec):
            return text
        m = re.fullmatch(r"(fp16|fp32|int([2-8])|kmeans([1-8]))", str(text).strip().lower())
        if m is None:
            raise ValueError(f"unknown layer codec {text!r}; use fp16, fp32, int2..int8 or kmeans1..kmeans8")
        if m.group(2):
            return cls("linear", int(m.group(2)))
        if m.group(3):
            return cls("kmeans", int(m.group(3)))
        return cls("float", 16 if m.group(1) == "fp16" else 32)

    @property
    def label(self) -> str:
        return {"float": f"fp{self.bits}", "linear": f"int{self.bits}", "kmeans": f"kmeans{self.bits}"}[self.scheme]


def encoded_bytes(enc: Encoded) -> int:
    """Bytes of a tensor's stored arrays (what it adds to the file before container overhead)."""
    return sum(t.numel() * t.element_size() for t in enc.arrays.values())


def _u8(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8))


def _symbols_encoded(t, shape, symbols, mask, bits, extra, meta, entropy) -> Encoded:
    """Encoded with a symbol stream for the kept values; ``mask`` None means dense."""
    data, info = encode_stream(symbols, bits, entropy=entropy)
    arrays = {"data": _u8(data), **extra}
    meta = {**meta, "values": info, "mask": None}
    if mask is not None:
        mdata, minfo = encode_mask(mask, entropy=entropy)
        arrays["mask"], meta["mask"] = _u8(mdata), minfo
    return Encoded("coded", shape, arrays, meta)


def _smaller(*options: Encoded) -> Encoded:
    return min(options, key=encoded_bytes)


def encode_coded(t: torch.Tensor, codec: LayerCodec | str, *, entropy: bool = True,
                 kmeans_iters: int = 30) -> Encoded:
    """Encode one float tensor with ``codec``, sparse and entropy-coded where that is smaller (module docstring).
    Raises ValueError for non-finite weights or a value beyond the float16 range."""
    codec = LayerCodec.parse(codec)
    t = t.detach().cpu().float()
    require_finite(t, f"{codec.label} codec")
    shape, flat = tuple(t.shape), t.reshape(-1)
    if codec.scheme == "float":
        dense = Encoded("float", shape, {"data": (to_fp16(t) if codec.bits == 16 else t).contiguous()})
        mask = flat != 0
        if bool(mask.all()):
            return dense
        values = to_fp16(flat[mask]) if codec.bits == 16 else flat[mask].clone()
        mdata, minfo = encode_mask(mask, entropy=entropy)
        sparse = Encoded("coded", shape, {"data": values, "mask": _u8(mdata)},
                         {"scheme": "float", "bits": codec.bits, "mask": minfo})
        return _smaller(dense, sparse)
    if codec.scheme == "linear":
        q, scale = quantize_linear(t, codec.bits, scale_dtype=_SCALE_DTYPE)
        if codec.bits == 8 and not entropy and bool((q != 0).all()):
            return Encoded("int8", shape, {"data": q.contiguous(), "scale": scale.contiguous()}, {"per_channel": True})
        sym = (q.reshape(-1).to(torch.int16) + qmax(codec.bits)).to(torch.uint8).numpy()
        meta, extra = {"scheme": "linear", "bits": codec.bits}, {"scale": scale.contiguous()}
        dense = _symbols_encoded(t, shape, sym, None, codec.bits, extra, meta, entropy)
        keep = (q.reshape(-1) != 0).numpy()
        if keep.all():
            return dense
        return _smaller(dense, _symbols_encoded(t, shape, sym[keep], keep, codec.bits, extra, meta, entropy))
    keep = (flat != 0).numpy()
    values = flat[torch.from_numpy(keep)]
    uniq = torch.unique(values)
    k = 2 ** codec.bits
    if uniq.numel() <= k and bool((to_fp16(uniq).float() == uniq).all()):
        codebook = torch.cat([uniq, uniq.new_zeros(k - uniq.numel())]).to(_SCALE_DTYPE)   # already shared
    else:
        codebook = kmeans_codebook(values, codec.bits, iters=kmeans_iters).to(_SCALE_DTYPE)
    idx = nearest_index(values, codebook).numpy().astype(np.uint8)
    meta, extra = {"scheme": "kmeans", "bits": codec.bits}, {"codebook": codebook.contiguous()}
    return _symbols_encoded(t, shape, idx, None if keep.all() else keep, codec.bits, extra, meta, entropy)


def decode_coded(enc: Encoded, *, name: str = "tensor") -> torch.Tensor:
    """Float32 tensor of ``enc.shape`` from an ``Encoded(kind="coded")``. Raises ValueError naming ``name`` if
    inconsistent or if the stored values decode to NaN/inf."""
    try:
        out = _decode_coded(enc)
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{name}: malformed coded tensor ({type(exc).__name__}: {str(exc)[:200]})") from None
    require_finite(out, f"stored {name}")
    return out


def check_encoded(kind: str, shape: Sequence[int], meta: Mapping, sizes: Mapping[str, int]) -> None:
    """Raise ValueError unless a tensor's declared encoding fits the arrays it stores: ``sizes`` maps each role
    (``data``, ``scale``, ``codebook``, ``mask``) to its element count. Every field must be an int (or the known
    string) in range, and every stream and mask exactly as long as its count, width and the shape need (see
    :func:`compress.quant.entropy.check_stream`, :func:`compress.quant.sparse.check_mask`). Allocates nothing."""
    numel = math.prod(shape)
    data = sizes.get("data")
    if kind not in KINDS or not isinstance(meta, Mapping) or data is None:
        raise ValueError(f"unknown tensor encoding {str(kind)[:40]!r} (or no data array)")
    if kind in ("raw", "float", "int8") and data != numel:
        raise ValueError(f"{kind} tensor stores {data} values, shape {tuple(shape)} needs {numel}")
    if kind in ("int8", "coded") and "scale" in sizes and sizes["scale"] not in (1, shape[0] if shape else 1):
        raise ValueError(f"{sizes['scale']} scales for a tensor of shape {tuple(shape)}")
    if "codebook" in sizes and not 1 <= sizes["codebook"] <= 256:
        raise ValueError(f"codebook of {sizes['codebook']} entries (1 to 256)")
    if kind == "kmeans":
        bits = meta.get("bits")
        if not (_is_int(bits) and 1 <= bits <= 8) or "codebook" not in sizes:
            raise ValueError(f"k-means tensor: bits {str(bits)[:40]} not an integer from 1 to 8, or no codebook")
        if data != math.ceil(numel * bits / 8):
            raise ValueError(f"k-means tensor stores {data} bytes, {numel} indices of {bits} bits need "
                             f"{math.ceil(numel * bits / 8)}")
    if kind != "coded":
        return
    scheme, bits = meta.get("scheme"), meta.get("bits")
    if not isinstance(scheme, str) or scheme not in _CODED_BITS or not _is_int(bits) or bits not in _CODED_BITS[scheme]:
        raise ValueError(f"coded tensor: scheme {str(scheme)[:40]!r} with bits {str(bits)[:40]} is not one of "
                         f"{sorted(_CODED_BITS)} with its widths")
    mask = meta.get("mask")
    if mask is not None:
        if "mask" not in sizes:
            raise ValueError("coded tensor: mask info without a mask array")
        check_mask(mask, sizes["mask"], numel)
    if scheme == "float":
        if data > numel:
            raise ValueError(f"coded tensor stores {data} values, shape {tuple(shape)} has {numel} elements")
        return
    count = check_stream(meta.get("values"), data, max_count=numel, bits=bits)
    if mask is None and count != numel:
        raise ValueError(f"coded tensor without a mask stores {count} values, shape {tuple(shape)} needs {numel}")
    if ("scale" if scheme == "linear" else "codebook") not in sizes:
        raise ValueError(f"coded {scheme} tensor without its {'scale' if scheme == 'linear' else 'codebook'}")


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _sizes(enc: Encoded) -> dict[str, int]:
    return {role: int(t.numel()) for role, t in enc.arrays.items()}


def _decode_coded(enc: Encoded) -> torch.Tensor:
    check_encoded("coded", enc.shape, enc.meta, _sizes(enc))
    numel, meta, arrays = math.prod(enc.shape), enc.meta, enc.arrays
    scheme, bits = meta["scheme"], int(meta["bits"])
    keep = None
    if meta.get("mask") is not None:
        keep = decode_mask(arrays["mask"].numpy(), meta["mask"])
        if keep.size != numel:
            raise ValueError(f"mask covers {keep.size} elements, shape {enc.shape} has {numel}")
    n_kept = int(keep.sum()) if keep is not None else numel
    out = torch.zeros(numel, dtype=torch.float32)
    where = torch.from_numpy(keep) if keep is not None else slice(None)
    if scheme == "float":
        values = arrays["data"].reshape(-1).float()
        if values.numel() != n_kept:
            raise ValueError(f"{values.numel()} stored values for {n_kept} kept positions")
        out[where] = values
        return out.reshape(enc.shape)
    sym = torch.from_numpy(decode_stream(arrays["data"].numpy(), meta["values"], max_count=numel).astype(np.int64))
    if sym.numel() != n_kept:
        raise ValueError(f"{sym.numel()} stored values for {n_kept} kept positions")
    if scheme == "linear":
        m, scale = qmax(bits), arrays["scale"]
        if sym.numel() and int(sym.max()) > 2 * m:
            raise ValueError(f"int{bits} value beyond [-{m}, {m}]")
        if scale.numel() not in (1, enc.shape[0] if enc.shape else 1):
            raise ValueError(f"{scale.numel()} scales for a tensor of shape {enc.shape}")
        q = torch.zeros(numel, dtype=torch.int16)
        q[where] = (sym - m).to(torch.int16)
        return dequantize_linear(q.reshape(enc.shape), scale)
    if scheme == "kmeans":
        codebook = arrays["codebook"].float()
        if sym.numel() and int(sym.max()) >= codebook.numel():
            raise ValueError("k-means index beyond the codebook")
        out[where] = codebook[sym]
        return out.reshape(enc.shape)
    raise ValueError(f"unknown coded scheme {scheme!r}")


def decode_any(enc: Encoded, *, name: str = "tensor") -> torch.Tensor:
    """Decode a tensor of any kind an artifact holds: ``coded`` here, the rest by :func:`codecs.decode_tensor`."""
    if enc.kind == "coded":
        return decode_coded(enc, name=name)
    check_encoded(enc.kind, enc.shape, enc.meta, _sizes(enc))
    return decode_tensor(enc, name=name)


def decode_all(encoded: Mapping[str, Encoded]) -> dict[str, torch.Tensor]:
    """Decode every tensor of any kind; errors name the tensor."""
    return decode_state_dict(encoded, decode=decode_any)


def entropy_report(encoded: Mapping[str, Encoded]) -> dict[str, int]:
    """Entropy coding against zip's deflate, over every symbol stream of the ``coded`` tensors (quantized values
    and delta-coded indices): ``stored_bytes`` (as stored: Huffman where smaller, else bit-packed),
    ``packed_bytes`` (all of them bit-packed at their fixed width) and ``deflate_bytes`` (those packed bytes,
    concatenated, through zlib's deflate at level 9, what a zip container can do at best)."""
    import zlib

    from compress.quant.codecs import pack_bits

    stored, packed = 0, []
    for enc in encoded.values():
        if enc.kind != "coded":
            continue
        streams = []
        if "values" in enc.meta:
            streams.append((enc.arrays["data"].numpy(), enc.meta["values"]))
        mask = enc.meta.get("mask")
        if mask is not None and mask["mask"] == "delta":
            streams.append((enc.arrays["mask"].numpy(), mask["stream"]))
        for data, info in streams:
            stored += data.size
            packed.append(pack_bits(decode_stream(data, info), int(info["bits"])))
    raw = np.concatenate(packed).tobytes() if packed else b""
    return {"stored_bytes": stored, "packed_bytes": len(raw), "deflate_bytes": len(zlib.compress(raw, 9))}
