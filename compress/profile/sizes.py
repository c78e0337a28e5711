"""Parameter, buffer and state_dict counts, and the bytes a state_dict really takes as ``.pt`` and ``.npz``."""

from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

__all__ = ["state_dict_file_bytes", "tensor_counts"]


def _state_dict_cast(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors to ``dtype`` (shared storage stays shared), others unchanged, all on the CPU."""
    memo: dict[tuple, torch.Tensor] = {}
    out = {}
    for k, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key not in memo:
            t = t.detach().cpu()
            memo[key] = t.to(dtype) if t.is_floating_point() else t
        out[k] = memo[key]
    return out


_FILES = ("pt_fp32", "pt_fp16", "npz_fp32", "npz_fp16")


def state_dict_file_bytes(model: nn.Module, state: Mapping[str, torch.Tensor] | None = None, *,
                          files: tuple[str, ...] = _FILES) -> dict[str, int]:
    """Bytes that ``torch.save`` and ``np.savez`` really write for the state_dict, as float32 and float16
    (``files``: which of ``pt_fp32``, ``pt_fp16``, ``npz_fp32``, ``npz_fp16`` to write; all by default). Empty
    for a model on the meta device."""
    state = model.state_dict() if state is None else state
    if any(t.is_meta for t in state.values()):
        return {}
    sizes = {}
    for tag, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        if f"pt_{tag}" not in files and f"npz_{tag}" not in files:
            continue
        cast = _state_dict_cast(state, dtype)
        if f"pt_{tag}" in files:
            buf = io.BytesIO()
            torch.save(cast, buf)
            sizes[f"pt_{tag}"] = buf.getbuffer().nbytes
        if f"npz_{tag}" in files:
            buf = io.BytesIO()
            # Any: numpy's stub would match ndarray values against savez's allow_pickle keyword
            arrays: dict[str, Any] = {k: v.numpy() for k, v in cast.items()}
            np.savez(buf, **arrays)
            sizes[f"npz_{tag}"] = buf.getbuffer().nbytes
    return {k: sizes[k] for k in _FILES if k in sizes}


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def tensor_counts(model: nn.Module) -> dict[str, int]:
    """Parameter and buffer element counts in one pass; a tensor held by several modules counts once."""
    counts = dict.fromkeys(("param_count", "trainable_param_count", "frozen_param_count", "norm_param_count",
                            "buffer_count"), 0)
    seen: set[int] = set()
    for m in model.modules():
        norm = isinstance(m, _NORM_TYPES)
        for p in m._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            n = p.numel()
            counts["param_count"] += n
            counts["trainable_param_count" if p.requires_grad else "frozen_param_count"] += n
            counts["norm_param_count"] += n if norm else 0
        for b in m._buffers.values():
            if b is not None and id(b) not in seen:
                seen.add(id(b))
                counts["buffer_count"] += b.numel()
    return counts
