"""Symmetric linear quantization at any width from 2 to 8 bits, one scale per output channel.

``quantize_linear(w, 8)`` is exactly :func:`compress.quant.codecs.quantize_int8` (same values, same scales);
``bits=4`` is the int4 per-channel codec: ``q = round(w / s)`` in ``[-7, 7]`` with ``s = max|w_c| / 7`` per
output channel ``c``, error ``<= s / 2``. Scales are rounded *up* to their storage dtype so no value clips.
"""

from __future__ import annotations

import torch

from compress.quant.codecs import channel_rows, symmetric_scales

__all__ = ["LINEAR_BITS", "check_finite", "qmax", "linear_scales", "quantize_linear", "dequantize_linear"]

LINEAR_BITS = range(2, 9)


def check_finite(w: torch.Tensor, what: str) -> None:
    """Raise ValueError if ``w`` holds NaN or infinity: no codec can store them meaningfully."""
    if w.is_floating_point() and not bool(torch.isfinite(w).all()):
        raise ValueError(f"{what}: tensor of shape {tuple(w.shape)} has non-finite values (NaN or inf)")


def qmax(bits: int) -> int:
    """Largest quantized magnitude: 127 for 8 bits, 7 for 4, 1 for 2 (a ternary code)."""
    if bits not in LINEAR_BITS:
        raise ValueError(f"linear quantization: bits must be an integer from 2 to 8, got {bits!r}")
    return 2 ** (bits - 1) - 1


def linear_scales(w: torch.Tensor, bits: int, *, per_channel: bool = True,
                  scale_dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Per-output-channel (dim 0) or single scale, in ``scale_dtype``; an all-zero channel gets scale 1."""
    return symmetric_scales(channel_rows(w, per_channel), qmax(bits), scale_dtype=scale_dtype,
                            name=f"linear quantization ({bits} bits):")


def quantize_linear(w: torch.Tensor, bits: int, *, per_channel: bool = True,
                    scale_dtype: torch.dtype = torch.float16) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q, scale)``: ``q`` int8 in ``[-qmax, qmax]`` of ``w``'s shape, ``w ~= q * scale``. Raises ValueError
    for non-finite weights."""
    check_finite(w, "linear quantization")
    scale = linear_scales(w, bits, per_channel=per_channel, scale_dtype=scale_dtype)
    m = qmax(bits)
    w32 = w.detach().to(torch.float32)
    s = scale.to(torch.float32).reshape((-1,) + (1,) * (w32.ndim - 1)) if scale.numel() > 1 else scale.float()
    q = torch.round(w32 / s).clamp_(-m, m).to(torch.int8)
    return q, scale


def dequantize_linear(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q * scale`` in float32 (one scale per output channel, or one in all)."""
    s = scale.to(torch.float32)
    if s.numel() == 1:
        return q.to(torch.float32) * s.reshape(())
    return q.to(torch.float32) * s.reshape((-1,) + (1,) * (q.ndim - 1))
