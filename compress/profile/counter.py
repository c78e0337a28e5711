"""``profile(model, input_shape)``: run the recorder once and assemble the :class:`~compress.profile.result.Profile`."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from compress.profile.handles import HANDLES, KINDS, Handle
from compress.profile.recorder import _run_forward
from compress.profile.result import Profile
from compress.profile.sizes import state_dict_file_bytes, tensor_counts

__all__ = ["profile"]


def _shape_error(exc: Exception, shape: tuple[int, ...]) -> Exception:
    """A model that cannot run at this shape (torch's RuntimeError) is a bad ``input_shape``: ValueError."""
    if type(exc) is RuntimeError:
        return ValueError(f"the model cannot run at input_shape {shape}: {str(exc).splitlines()[0]}")
    return exc


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence like (C, H, W), got {input_shape!r}") from None
    if len(shape) not in (3, 4) or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                           and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W) of positive ints, got {input_shape!r}")
    shape = tuple(int(d) for d in shape)
    return shape if len(shape) == 4 else (1, *shape)


def profile(model: nn.Module, input_shape: Sequence[int], *, execute: str = "auto", dtype: torch.dtype | None = None,
            serialize: bool = True, handles: Mapping[Any, Handle] | None = None) -> Profile:
    """Count parameters, MACs, FLOPs, activation bytes and file sizes of ``model`` at ``input_shape``.

    ``input_shape`` is ``(C, H, W)`` (batch 1) or ``(N, C, H, W)``. ``execute``: ``"meta"`` (shapes only),
    ``"real"`` (zeros on the model's device) or ``"auto"`` (meta, falling back to real). ``dtype``: the input's
    dtype (default: the model's first floating tensor's, else float32). ``serialize=False`` skips the file sizes.
    ``handles`` adds or overrides counting rules (aten packet -> handle). Conventions: the module docstring.
    Raises ``TypeError`` if ``model`` is not an ``nn.Module``, ``ValueError`` for a bad ``input_shape`` or
    ``execute``; the model's own error if it cannot run at that shape.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = _check_shape(input_shape)
    if execute not in ("auto", "meta", "real"):
        raise ValueError(f"execute must be 'auto', 'meta' or 'real', got {execute!r}")
    table = {**HANDLES, **(handles or {})}
    on_meta = execute != "real"
    try:
        recorder = _run_forward(model, shape, on_meta=on_meta, dtype=dtype, handles=table)
    except Exception as exc:
        if execute != "auto":
            raise _shape_error(exc, shape) from exc
        on_meta = False
        try:
            recorder = _run_forward(model, shape, on_meta=False, dtype=dtype, handles=table)
        except Exception as exc:
            raise _shape_error(exc, shape) from exc

    state = model.state_dict()
    records = recorder.records
    macs = sum(r.macs for r in records)
    flops_by_kind: dict[str, int] = {k: 0 for k in KINDS if k not in ("shape", "unsupported")}
    for r in records:
        if r.flops:
            flops_by_kind[r.kind] += r.flops
    for layer in recorder.layers:
        layer.share = layer.macs / macs if macs else 0.0
    first = next(iter(state.values()), None)
    return Profile(
        model_type=type(model).__name__,
        input_shape=shape,
        executed_on="meta" if on_meta else str(first.device if first is not None else "cpu"),
        **tensor_counts(model),
        state_dict_count=sum(t.numel() for t in state.values()),
        macs=macs,
        flops=sum(flops_by_kind.values()),
        flops_by_kind=flops_by_kind,
        activation_bytes=sum(r.out_bytes for r in records),
        peak_activation_bytes=recorder.peak_bytes,
        file_size_bytes=state_dict_file_bytes(model, state) if serialize else {},
        unsupported=dict(Counter(r.op for r in records if r.kind == "unsupported")),
        layers=recorder.layers,
        records=records,
    )
