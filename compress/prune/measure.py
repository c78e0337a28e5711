"""The before/after quantities of pruning: :func:`compress.budget.quantities`, with the bytes of a ``.pt`` state dict
counted without writing its tensors.

``torch.save`` lays a state dict out as a zip whose size depends only on the keys, shapes, strides, dtypes and
storage sizes, never on the values. :func:`pt_state_dict_bytes` builds the float16 (or float32) state dict as
:func:`compress.budget.state_dict_bytes` does, but of uninitialized tensors, and saves it under
``torch.serialization.skip_data`` (the zip records keep their sizes, their bytes are not written): the same count,
exactly (a test compares them on many models), without copying and serializing every weight. The table of a
ratio prune uses it; a budget's limits are checked on bytes really written (``compress.budget.quantities``).
"""

from __future__ import annotations

import io
import typing
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from compress.budget import QUANTITIES, Budget, quantities

__all__ = ["pt_state_dict_bytes"]

_PT = {"pt-fp16": torch.float16, "pt-fp32": torch.float32}


class _Counter(io.RawIOBase):
    """A file that only counts the bytes that would be written (seeks included)."""

    def __init__(self) -> None:
        self.pos = self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b) -> int:
        n = memoryview(b).nbytes
        self.pos += n
        self.size = max(self.size, self.pos)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        self.size = max(self.size, self.pos)
        return self.pos

    def tell(self) -> int:
        return self.pos


def pt_state_dict_bytes(model: nn.Module, file_format: str = "pt-fp16") -> int:
    """Bytes ``torch.save`` writes for ``model``'s state dict in ``"pt-fp16"`` or ``"pt-fp32"``, exactly as
    :func:`compress.budget.state_dict_bytes` measures them, without writing the tensors' bytes. Raises ValueError
    for another format or a model on the meta device."""
    if file_format not in _PT:
        raise ValueError(f"pt_state_dict_bytes: {file_format!r} is not one of {', '.join(_PT)}")
    dtype = _PT[file_format]
    memo: dict[tuple, torch.Tensor] = {}
    cast = {}
    for k, t in model.state_dict().items():
        if t.is_meta:
            raise ValueError("file bytes need real weights: the model is on the meta device")
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
        if key not in memo:
            # as compress.profile.sizes casts: a CPU tensor of the same dtype is kept (its whole storage is
            # saved), anything else becomes a new tensor of its own size and layout
            same = t.device.type == "cpu" and (not t.is_floating_point() or t.dtype == dtype)
            memo[key] = t.detach() if same else torch.empty_like(
                t, dtype=dtype if t.is_floating_point() else t.dtype, device="cpu")
        cast[k] = memo[key]
    sink = _Counter()
    with torch.serialization.skip_data():
        torch.save(cast, typing.cast(typing.IO[bytes], sink))   # a binary file as far as torch.save goes
    return sink.size


@dataclass(frozen=True)
class Meter:
    """The quantities of a model as pruning reads them: the budget's (or the default budget's meanings), with the
    functions the caller passed in for artifact bytes and latency."""

    shape: tuple[int, ...]
    budget: Budget
    file_bytes: Callable[[nn.Module], int] | None
    latency: Callable[..., float] | None

    def __call__(self, model: nn.Module, names) -> dict[str, float | None]:
        """For a budget's limits: bytes really written."""
        return quantities(model, self.budget, self.shape, names=names, file_bytes=self.file_bytes,
                          latency=self.latency)

    def table_row(self, model: nn.Module, *, with_latency: bool, evaluate) -> dict[str, float | None]:
        """Every quantity (``latency_ms`` only ``with_latency``) and ``acc`` from ``evaluate(model)``; a ``.pt``
        state dict's bytes counted by :func:`pt_state_dict_bytes`."""
        names: Sequence[str] = [q for q in QUANTITIES if q != "latency_ms" or with_latency]
        file_bytes = self.file_bytes
        if file_bytes is None and self.budget.file_format in _PT:
            file_bytes = lambda m: pt_state_dict_bytes(m, self.budget.file_format)  # noqa: E731
        out = quantities(model, self.budget, self.shape, names=names, file_bytes=file_bytes, latency=self.latency)
        out["acc"] = float(evaluate(model)) if evaluate is not None else None
        return out
