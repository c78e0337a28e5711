"""Symmetric linear quantization at any width from 2 to 8 bits: the one implementation, int8 included.

``q = round(w / s)`` in ``[-qmax, qmax]`` (``qmax = 2**(bits-1) - 1``: 127 for int8, 7 for int4, 1 for a
ternary int2) with one scale ``s = max|w_c| / qmax`` per output channel ``c`` (dim 0) or one per tensor; error
``<= s / 2``. Scales are rounded *up* to their storage dtype so no value clips. The whole-model ``int8`` codec
(:mod:`compress.quant.codecs`), the per-layer ``int2``..``int8`` codecs (:mod:`compress.quant.layer_codecs`),
trained quantization (:mod:`compress.quant.qat`) and int8 execution (:mod:`compress.int8`) all call it.
"""

from __future__ import annotations

import math

import torch

from compress.quant.checks import require_finite

__all__ = ["LINEAR_BITS", "qmax", "channel_rows", "symmetric_scales", "linear_scales", "quantize_linear",
           "dequantize_linear"]

LINEAR_BITS = range(2, 9)


def qmax(bits: int) -> int:
    """Largest quantized magnitude: 127 for 8 bits, 7 for 4, 1 for 2 (a ternary code)."""
    if bits not in LINEAR_BITS:
        raise ValueError(f"linear quantization: bits must be an integer from 2 to 8, got {bits!r}")
    return 2 ** (bits - 1) - 1


def channel_rows(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """``w`` in float32 as one row per output channel (dim 0), or as a single row."""
    w32 = w.detach().to(torch.float32)
    return w32.reshape(w32.shape[0], -1) if per_channel and w32.ndim >= 1 else w32.reshape(1, -1)


def _round_up_to(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` (float32, positive) cast to ``dtype``, rounded up so that ``cast >= x``."""
    y = x.to(dtype)
    low = y.to(torch.float32) < x
    if low.any():
        y = torch.where(low, torch.nextafter(y, torch.full_like(y, math.inf)), y)
    return y


def symmetric_scales(flat: torch.Tensor, qmax: int, *, scale_dtype: torch.dtype = torch.float16,
                     name: str = "tensor") -> torch.Tensor:
    """One symmetric scale per row of ``flat`` (``max |row| / qmax``, rounded up into ``scale_dtype``), so that
    ``|w - round(w / s) * s| <= s / 2``. An all-zero row gets scale 1; a row whose largest value is so small that
    ``max / qmax`` underflows gets float32's smallest normal number (a zero scale would divide by zero). Raises
    ValueError naming ``name`` for a scale beyond float16's range when ``scale_dtype`` is float16."""
    amax = flat.abs().amax(dim=1)
    tiny = torch.finfo(torch.float32).smallest_normal
    scale = torch.where(amax > 0, (amax / qmax).clamp_min(tiny), torch.ones_like(amax))
    if scale_dtype == torch.float16 and (scale > 65504).any():
        raise ValueError(f"{name} scale {scale.max().item():.4g} is beyond the float16 range (max |w| = "
                         f"{amax.max().item():.4g}); use scale_dtype float32")
    return _round_up_to(scale, scale_dtype)


def linear_scales(w: torch.Tensor, bits: int, *, per_channel: bool = True,
                  scale_dtype: torch.dtype = torch.float16, name: str = "tensor") -> torch.Tensor:
    """Per-output-channel (dim 0) or single scale, in ``scale_dtype``; an all-zero channel gets scale 1."""
    return symmetric_scales(channel_rows(w, per_channel), qmax(bits), scale_dtype=scale_dtype,
                            name=f"{name}: {'int8' if bits == 8 else f'linear quantization ({bits} bits)'}")


def quantize_linear(w: torch.Tensor, bits: int = 8, *, per_channel: bool = True,
                    scale_dtype: torch.dtype = torch.float16, name: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: ``q`` int8 in ``[-qmax, qmax]`` of ``w``'s shape, ``w ~= q * scale``; ``scale`` has one
    entry per output channel (``w.shape[0]``) or one in all. Raises ValueError naming ``name`` for non-finite
    weights or a scale beyond ``scale_dtype``'s range."""
    require_finite(w, name)
    m = qmax(bits)
    flat = channel_rows(w, per_channel)
    scale = symmetric_scales(flat, m, scale_dtype=scale_dtype,
                             name=f"{name}: {'int8' if bits == 8 else f'linear quantization ({bits} bits)'}")
    q = torch.round(flat / scale.to(torch.float32)[:, None]).clamp_(-m, m).to(torch.int8)
    return q.reshape(w.shape), scale


def dequantize_linear(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` in float32 (one scale per output channel, or one in all)."""
    s = scale.to(torch.float32)
    if s.numel() == 1:
        return q.to(torch.float32) * s.reshape(())
    return q.to(torch.float32) * s.reshape((-1,) + (1,) * (q.ndim - 1))
