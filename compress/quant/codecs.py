"""Weight codecs: pure functions from tensors to smaller tensors and back.

Codecs (each with an exact decoder and a stated error bound, see the tests):
    fp16      cast to float16; error <= half an fp16 ulp (relative 2**-11 for normal numbers)
    int8      symmetric, one scale per output channel (dim 0) or per tensor; q = round(w / s) in [-127, 127],
              error <= s / 2 (:func:`compress.quant.linear.quantize_linear` at 8 bits, the one implementation).
    kmeans    weight sharing (Han et al. 2016, "Deep Compression", sec. 3): a 2**bits-entry codebook per
              tensor from Lloyd's k-means with linear initialisation (their best init), indices bit-packed.
              Each weight maps to its nearest stored centroid.

Hostile weights (:mod:`compress.quant.checks`): every codec refuses NaN/inf, and an int8 or k-means encoding
that loses the bulk of a tensor to a few outliers. Values are never clipped or overflowed silently: a value, scale
or codebook entry beyond its storage dtype's range (float16: 65504) raises, naming the tensor and the float32
option. Decoding refuses stored tables whose values decode to NaN or inf.

Which tensors get quantized (:func:`quantizable`, the tensor form of :func:`compress.models.layers.weight_layers`,
the one layer selection): floating tensors with 2 or more dimensions (conv and linear weights) and at least ``Codec.min_numel`` elements, and for k-means only when the packed indices plus codebook
are smaller than keeping the tensor. Everything else -- biases, BatchNorm vectors and running statistics, small
kernels such as a 1-channel stem -- stays in ``Codec.keep_dtype`` (float16; float32 for the fp32 codec): they
are a small share of the bytes and the most sensitive to error. ``num_batches_tracked`` counters are dropped:
they never affect an eval-mode forward pass.

:func:`compress.quant.quantize` with a ``CodecConfig`` applies a codec to a whole model and returns the dequantized float32
model, which is exactly what :mod:`compress.export.artifact` writes and reads back.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch

from compress.quant.checks import check_bulk_error, require_finite
from compress.quant.linear import dequantize_linear, quantize_linear

__all__ = ["CODEC_NAMES", "Codec", "Encoded", "to_fp16", "kmeans_codebook", "quantize_kmeans", "dequantize_kmeans",
           "nearest_index", "pack_bits", "unpack_bits", "quantizable", "encode_tensor", "decode_tensor",
           "encode_state_dict", "decode_state_dict", "DROPPED_SUFFIXES"]

CODEC_NAMES = ("fp32", "fp16", "int8", "kmeans")
_FLOAT_DTYPES = {"float16": torch.float16, "float32": torch.float32}
DROPPED_SUFFIXES = ("num_batches_tracked",)


@dataclass(frozen=True)
class Codec:
    """How to store a model's tensors. ``Codec.parse("kmeans4")`` builds one from a short name."""

    name: str = "fp16"              # fp32 | fp16 | int8 | kmeans
    bits: int = 8                   # kmeans: codebook of 2**bits entries, 1..8 bits per weight
    per_channel: bool = True        # int8: one scale per output channel (dim 0); False: one per tensor
    scale_dtype: str = "float16"    # dtype of int8 scales and k-means codebooks: float16 | float32
    keep_dtype: str = "float16"     # dtype of tensors left unquantized (biases, BN, small); fp32 codec: float32
    min_numel: int = 256            # weights with fewer elements (count) are left unquantized
    kmeans_iters: int = 30          # Lloyd iterations at most (stops early when assignments settle)

    def __post_init__(self) -> None:
        if self.name not in CODEC_NAMES:
            raise ValueError(f"unknown codec {self.name!r}; known: {', '.join(CODEC_NAMES)}")
        if self.name == "kmeans" and not (isinstance(self.bits, int) and 1 <= self.bits <= 8):
            raise ValueError(f"kmeans codec: bits must be an integer from 1 to 8, got {self.bits!r}")
        for attr in ("scale_dtype", "keep_dtype"):
            if getattr(self, attr) not in _FLOAT_DTYPES:
                raise ValueError(f"codec {attr} must be float16 or float32, got {getattr(self, attr)!r}")
        if self.name == "fp32" and self.keep_dtype != "float32":
            object.__setattr__(self, "keep_dtype", "float32")
        if self.min_numel < 0 or self.kmeans_iters < 0:
            raise ValueError("codec min_numel and kmeans_iters must be >= 0")

    @classmethod
    def parse(cls, text: "str | Codec", **overrides) -> "Codec":
        """``"fp32"``, ``"fp16"``, ``"int8"`` (per channel), ``"int8-tensor"``, ``"kmeans4"`` (1..8 bits)."""
        if isinstance(text, Codec):
            return dataclasses.replace(text, **overrides) if overrides else text
        m = re.fullmatch(r"(fp32|fp16|int8|int8-tensor|kmeans)([1-8])?", str(text).strip().lower())
        if m is None or (m.group(1) == "kmeans") != (m.group(2) is not None):
            raise ValueError(f"unknown codec {text!r}; use fp32, fp16, int8, int8-tensor or kmeans1..kmeans8")
        kw: dict = {"name": m.group(1)}
        if m.group(1) == "int8-tensor":
            kw = {"name": "int8", "per_channel": False}
        if m.group(2):
            kw["bits"] = int(m.group(2))
        kw.update(overrides)
        return cls(**kw)

    @property
    def label(self) -> str:
        """Short name: fp32, fp16, int8, int8-tensor, kmeans4."""
        if self.name == "kmeans":
            return f"kmeans{self.bits}"
        if self.name == "int8" and not self.per_channel:
            return "int8-tensor"
        return self.name

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> "Codec":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"codec has unknown fields {sorted(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------- fp16
def to_fp16(w: torch.Tensor, *, name: str = "tensor") -> torch.Tensor:
    """Cast to float16; raises ValueError naming ``name`` for NaN/inf values or a finite value beyond the
    float16 range (|w| > 65504)."""
    require_finite(w, name)
    h = w.detach().to(torch.float16)
    if not torch.isfinite(h).all():
        raise ValueError(f"{name} (shape {tuple(w.shape)}) has values beyond the float16 range (max |w| = "
                         f"{w.abs().max().item():.4g} > 65504); use the fp32 codec")
    return h


# ---------------------------------------------------------------------------------------------- k-means
def nearest_index(w: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index (int64) of the nearest codebook entry for each element of ``w`` (ties: the lower entry)."""
    c = codebook.to(torch.float64)
    order = torch.argsort(c, stable=True)
    cs = c[order]
    mids = (cs[1:] + cs[:-1]) / 2
    # bucketize with right=False: a value equal to a midpoint goes to the lower centroid.
    pos = torch.bucketize(w.detach().reshape(-1).to(torch.float64), mids, right=False)
    return order[pos]


def kmeans_codebook(w: torch.Tensor, bits: int, *, iters: int = 30, name: str = "tensor") -> torch.Tensor:
    """Lloyd's k-means on the values of ``w`` with ``2**bits`` centroids, linearly initialised between
    min and max (deterministic). Returns the float64 codebook, sorted; empty clusters keep their centroid.

    In one dimension each cluster is an interval of the sorted values, so an iteration costs a search for
    ``k - 1`` boundaries and ``k`` differences of a prefix sum, not a pass over all weights.
    Raises ValueError naming ``name`` for NaN/inf weights.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"kmeans bits must be from 1 to 8, got {bits}")
    require_finite(w, name)
    xs = torch.sort(w.detach().reshape(-1).to(torch.float64)).values
    k = 2 ** bits
    if xs.numel() == 0:
        return torch.zeros(k, dtype=torch.float64)
    prefix = torch.cat([xs.new_zeros(1), torch.cumsum(xs, 0)])
    xs_np = xs.numpy()
    centroids = torch.linspace(xs[0].item(), xs[-1].item(), k, dtype=torch.float64)
    bounds = None
    for _ in range(iters):
        mids = (centroids[1:] + centroids[:-1]) / 2
        # a value equal to a midpoint belongs to the lower centroid, as in nearest_index
        inner = torch.from_numpy(np.searchsorted(xs_np, mids.numpy(), side="right"))  # torch's is slow here
        new_bounds = torch.cat([xs.new_zeros(1, dtype=torch.int64), inner.to(torch.int64),
                                torch.full((1,), xs.numel(), dtype=torch.int64)])
        if bounds is not None and torch.equal(new_bounds, bounds):
            break
        bounds = new_bounds
        counts = bounds[1:] - bounds[:-1]
        sums = prefix[bounds[1:]] - prefix[bounds[:-1]]
        centroids = torch.sort(torch.where(counts > 0, sums / counts.clamp(min=1), centroids)).values
    return centroids


def quantize_kmeans(w: torch.Tensor, bits: int, *, codebook_dtype: torch.dtype = torch.float16,
                    iters: int = 30, name: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """Weight sharing: returns ``(indices, codebook)``; ``indices`` uint8 of ``w``'s shape, each the nearest
    entry of the stored (rounded) ``codebook`` of ``2**bits`` entries. Error: ``|w - codebook[idx]|`` is the
    distance to the nearest entry, and the mean squared error is at most that of the linear grid it starts from.
    Raises ValueError naming ``name`` for NaN/inf weights or a centroid beyond ``codebook_dtype``'s range.
    """
    exact = kmeans_codebook(w, bits, iters=iters, name=name)
    codebook = exact.to(codebook_dtype)
    if not torch.isfinite(codebook).all():
        raise ValueError(f"{name}: k-means centroid {exact.abs().max().item():.4g} is beyond the "
                         f"{str(codebook_dtype).removeprefix('torch.')} range; use scale_dtype float32")
    idx = nearest_index(w, codebook).to(torch.uint8)
    return idx.reshape(w.shape), codebook


def dequantize_kmeans(indices: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``codebook[indices]`` in float32."""
    return codebook.to(torch.float32)[indices.to(torch.int64)]


# ---------------------------------------------------------------------------------------------- bit packing
def pack_bits(values: np.ndarray | torch.Tensor, bits: int) -> np.ndarray:
    """Pack unsigned ints in ``[0, 2**bits)`` into a uint8 array, ``bits`` per value, least significant bit
    first, in one continuous bit stream: ``ceil(n * bits / 8)`` bytes. Raises ValueError on out-of-range values.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"pack_bits: bits must be from 1 to 8, got {bits}")
    v = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    v = v.reshape(-1)
    if v.size and (v.min() < 0 or v.max() >= 2 ** bits):
        raise ValueError(f"pack_bits: values must be in [0, {2 ** bits}), got [{v.min()}, {v.max()}]")
    v = v.astype(np.uint8)
    if bits == 8:
        return v.copy()
    planes = (v[:, None] >> np.arange(bits, dtype=np.uint8)) & 1
    return np.packbits(planes.reshape(-1), bitorder="little")


def unpack_bits(packed: np.ndarray | torch.Tensor, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` values (uint8). Raises ValueError if ``packed`` is too short."""
    if not 1 <= bits <= 8:
        raise ValueError(f"unpack_bits: bits must be from 1 to 8, got {bits}")
    p = packed.detach().cpu().numpy() if isinstance(packed, torch.Tensor) else np.asarray(packed)
    p = p.reshape(-1).astype(np.uint8, copy=False)
    if p.size != math.ceil(count * bits / 8):
        raise ValueError(f"unpack_bits: {count} values of {bits} bits need {math.ceil(count * bits / 8)} bytes, "
                         f"got {p.size}")
    if bits == 8:
        return p.copy()
    planes = np.unpackbits(p, count=count * bits, bitorder="little").reshape(count, bits)
    return (planes << np.arange(bits, dtype=np.uint8)).sum(axis=1, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------- tensors
@dataclass
class Encoded:
    """One tensor as stored. ``arrays`` maps a role to a tensor: ``"data"`` (the weights: float, int8 or
    packed indices) and, for int8 and k-means, ``"scale"`` or ``"codebook"``."""

    kind: str                       # float | int8 | kmeans | raw
    shape: tuple[int, ...]
    arrays: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)


def quantizable(t: torch.Tensor, codec: Codec) -> bool:
    """Whether ``codec`` quantizes ``t`` (see the module docstring); otherwise it is kept in keep_dtype."""
    if codec.name in ("fp32", "fp16") or not t.is_floating_point() or t.ndim < 2 or t.numel() < codec.min_numel:
        return False
    if codec.name == "kmeans":
        stored = math.ceil(t.numel() * codec.bits / 8) + 2 ** codec.bits * _FLOAT_DTYPES[codec.scale_dtype].itemsize
        return stored < t.numel() * _FLOAT_DTYPES[codec.keep_dtype].itemsize
    return True


def encode_tensor(t: torch.Tensor, codec: Codec, *, name: str = "tensor") -> Encoded:
    """Encode one tensor with ``codec`` (non-float tensors are stored as they are). Raises ValueError naming
    ``name`` for NaN/inf values or values beyond the storage dtype's range (see the module docstring)."""
    t = t.detach().cpu()
    shape = tuple(t.shape)
    if not t.is_floating_point():
        return Encoded("raw", shape, {"data": t.clone().contiguous()})
    require_finite(t, name)
    if not quantizable(t, codec):
        keep = _FLOAT_DTYPES[codec.keep_dtype]
        data = to_fp16(t, name=name) if keep == torch.float16 else t.to(keep)
        return Encoded("float", shape, {"data": data.clone().contiguous()})
    sdt = _FLOAT_DTYPES[codec.scale_dtype]
    if codec.name == "int8":
        q, scale = quantize_linear(t, 8, per_channel=codec.per_channel, scale_dtype=sdt, name=name)
        check_bulk_error(t, dequantize_linear(q, scale), codec.label, name)
        return Encoded("int8", shape, {"data": q.contiguous(), "scale": scale.contiguous()},
                       {"per_channel": codec.per_channel})
    idx, codebook = quantize_kmeans(t, codec.bits, codebook_dtype=sdt, iters=codec.kmeans_iters, name=name)
    check_bulk_error(t, dequantize_kmeans(idx, codebook), codec.label, name)
    packed = torch.from_numpy(pack_bits(idx, codec.bits))
    return Encoded("kmeans", shape, {"data": packed, "codebook": codebook.contiguous()}, {"bits": codec.bits})


def decode_tensor(enc: Encoded, *, name: str = "tensor") -> torch.Tensor:
    """Float32 tensor (or the stored dtype for ``raw``) of ``enc.shape``. Raises ValueError naming ``name`` on
    inconsistency or when the stored values decode to NaN/inf (a file edited after encoding)."""
    out = _decode(enc)
    if out.is_floating_point():
        require_finite(out, f"stored {name}")
    return out


def _decode(enc: Encoded) -> torch.Tensor:
    numel = math.prod(enc.shape)
    data = enc.arrays["data"]
    if enc.kind in ("raw", "float"):
        if data.numel() != numel:
            raise ValueError(f"stored tensor has {data.numel()} values, shape {enc.shape} needs {numel}")
        out = data.reshape(enc.shape)
        return out.clone() if enc.kind == "raw" else out.to(torch.float32)
    if enc.kind == "int8":
        if data.numel() != numel:
            raise ValueError(f"int8 tensor has {data.numel()} values, shape {enc.shape} needs {numel}")
        if enc.arrays["scale"].numel() not in (1, enc.shape[0] if enc.shape else 1):
            raise ValueError(f"int8 tensor of shape {enc.shape} has {enc.arrays['scale'].numel()} scales")
        return dequantize_linear(data.reshape(enc.shape), enc.arrays["scale"])
    if enc.kind == "kmeans":
        bits = enc.meta["bits"]
        if isinstance(bits, bool) or not isinstance(bits, int):   # int(inf) would raise OverflowError
            raise ValueError(f"k-means bits must be an integer, got {str(bits)[:40]}")
        idx = torch.from_numpy(unpack_bits(data, bits, numel)).reshape(enc.shape)
        if idx.numel() and int(idx.max()) >= enc.arrays["codebook"].numel():
            raise ValueError("k-means index beyond the codebook")
        return dequantize_kmeans(idx, enc.arrays["codebook"])
    raise ValueError(f"unknown tensor encoding {enc.kind!r}")


def encode_state_dict(state_dict: Mapping[str, torch.Tensor], codec: Codec | str) -> dict[str, Encoded]:
    """Encode every tensor of a state_dict (``num_batches_tracked`` counters are dropped)."""
    codec = Codec.parse(codec)
    return {k: encode_tensor(v, codec, name=f"tensor {k!r}") for k, v in state_dict.items()
            if not k.endswith(DROPPED_SUFFIXES)}


def decode_state_dict(encoded: Mapping[str, Encoded], *,
                      decode: Callable[..., torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Decode every tensor with ``decode`` (default :func:`decode_tensor`); errors name the tensor."""
    decode = decode or decode_tensor
    out = {}
    for k, v in encoded.items():
        try:
            out[k] = decode(v, name=f"tensor {k!r}")
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            msg = str(exc)
            raise ValueError(msg if repr(k) in msg else f"tensor {k!r}: {msg}") from None
    return out
