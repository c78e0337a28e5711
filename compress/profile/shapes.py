"""Shape-only results on the meta device: ``meta_shortcut(func, args, kwargs)`` gives a function that returns an op's
output without running its kernel, for the ops whose meta kernels are written in Python.

Both dispatch-level passes that need shapes and never values use it: the profiler's recording (``recorder``) and
the pruning graph's trace (``compress.prune.trace``). Python meta kernels are slow per call (batch norm about
1 ms, relu about 0.4 ms), and the first one imports ``torch._dynamo`` (about 2.5 s, through the
``torch._disable_dynamo`` wrapper on the type-promotion decorator); ``torch.broadcast_shapes`` imports sympy
(about 1 s). Each shortcut returns an empty meta tensor of the kernel's output shape and dtype, and only for the
plain case it checks (contiguous inputs, known argument forms): anything else goes to the real kernel, which raises
torch's own error on a bad shape. The records come out identical to a real run (tests/profile, tests/prune).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = ["meta_shortcut"]

aten = torch.ops.aten
Shortcut = Callable[[Sequence[Any], Mapping[str, Any]], Any]


# --- batch norm, activations and convolution ------------------------------------------------------------------
# Some meta kernels are Python decompositions (batch norm about 1 ms a call, relu about 0.4 ms): these ops' output
# shapes are known without them. Used only on the meta device, for ops whose only tensor argument that matters is
# the input; the records come out identical to a real run (a test checks it).


def _meta_like(x: torch.Tensor, shape: Sequence[int] | None = None) -> torch.Tensor:
    # torch.empty_like on meta runs a Python stride computation; a contiguous input needs none
    return torch.empty(x.shape if shape is None else shape, dtype=x.dtype, device="meta")


def _same_as_input(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    return _meta_like(args[0])


def _in_place(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    return args[0]


def _eval_batch_norm(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    x = args[0]  # eval mode (training=False): the CPU kernel returns empty saved statistics
    return _meta_like(x), _meta_like(x, (0,)), _meta_like(x, (0,))


_UNARY = ("relu", "relu6", "hardtanh", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid", "leaky_relu",
          "elu", "mish")
_META_SHORTCUTS: dict[Any, Callable[[Sequence[Any], Mapping[str, Any]], Any]] = {
    **{getattr(aten, n): _same_as_input for n in _UNARY if hasattr(aten, n)},
    **{getattr(aten, n + "_"): _in_place for n in _UNARY if hasattr(aten, n + "_")},
}


def _conv_shape(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    x, w, _, stride, padding, dilation = args[:6]
    spatial = [(size + 2 * p - d * (k - 1) - 1) // s + 1
               for size, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)]
    return _meta_like(x, (x.shape[0], w.shape[0], *spatial))


def _profiler_shortcut(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Shortcut | None:
    if not (args and isinstance(args[0], torch.Tensor) and args[0].is_meta and args[0].is_contiguous()):
        return None
    x = args[0]  # each shortcut checks what the kernel would, so a wrong shape still raises torch's error
    if (func is aten.native_batch_norm.default and args[5] is False and x.dim() >= 2
            and all(t is None or t.shape == (x.shape[1],) for t in args[1:5])):
        return _eval_batch_norm
    if (func is aten.convolution.default and not args[6] and x.dim() == 4 and args[1].dim() == 4
            and x.shape[1] == args[1].shape[1] * args[8] and len(args[3]) == len(args[4]) == len(args[5]) == 2
            and (args[2] is None or args[2].shape == (args[1].shape[0],)) and not kwargs
            and all(x.shape[2 + i] + 2 * args[4][i] >= args[5][i] * (args[1].shape[2 + i] - 1) + 1 for i in (0, 1))):
        return _conv_shape  # plain 2-d convolution (not transposed): the output-size formula
    shortcut = _META_SHORTCUTS.get(func.overloadpacket)
    if shortcut is not None and not any(isinstance(a, torch.Tensor) for a in args[1:]) and not kwargs:
        return shortcut
    return None


# --- linear, elementwise, reductions, cat and pools -------------------------------------------------------------

def _empty(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=dtype, device="meta")


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """Broadcast shape (torch.broadcast_shapes imports sympy on its first call, about 1 s)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise ValueError(f"shapes {a} and {b} do not broadcast")
    return tuple(y if x == 1 else x for x, y in zip(a, b))


def _plain(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_meta and t.is_contiguous()


def _addmm(args, kwargs) -> Shortcut | None:
    bias, x, w = args[:3]
    if (len(args) == 3 and _plain(bias) and _plain(x) and isinstance(w, torch.Tensor) and w.is_meta
            and x.dim() == w.dim() == 2 and x.shape[1] == w.shape[0] and bias.dim() <= 2
            and x.dtype == w.dtype == bias.dtype and set(kwargs) <= {"beta", "alpha"}):
        out = (x.shape[0], w.shape[1])
        if _broadcast(bias.shape, out) == out:
            return lambda a, k: _empty(out, x.dtype)
    return None


def _binary(args, kwargs) -> Shortcut | None:
    a, b = args[0], args[1]
    if not (_plain(a) and (_plain(b) or isinstance(b, (int, float))) and set(kwargs) <= {"alpha"}):
        return None
    if isinstance(b, torch.Tensor) and a.dtype != b.dtype:
        return None                      # type promotion between tensors: leave it to the kernel
    shape = _broadcast(a.shape, b.shape) if isinstance(b, torch.Tensor) else a.shape
    dtype = torch.result_type(a, b)
    return lambda x, k: _empty(shape, dtype)


def _mean(args, kwargs) -> Shortcut | None:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if not (_plain(x) and x.is_floating_point() and dims and set(kwargs) <= {"dim", "keepdim"}
            and len(args) <= 3 and x.dim() > 0 and all(-x.dim() <= d < x.dim() for d in dims)):
        return None
    dims = {d % x.dim() for d in dims}
    shape = [1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in dims]
    return lambda a, k: _empty(shape, x.dtype)


def _cat(args, kwargs) -> Shortcut | None:
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if (kwargs and set(kwargs) != {"dim"}) or not tensors or not all(_plain(t) for t in tensors):
        return None
    first = tensors[0]
    nd = first.dim()
    if nd == 0 or not -nd <= dim < nd or any(t.dim() != nd or t.dtype != first.dtype for t in tensors):
        return None
    dim %= nd
    if any(t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:] for t in tensors):
        return None
    shape = list(first.shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return lambda a, k: _empty(shape, first.dtype)


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1                          # the last window must start inside the input or its left padding
    return out


def _max_pool2d(args, kwargs) -> Shortcut | None:
    x = args[0]
    if kwargs or not _plain(x) or x.dim() != 4 or not x.is_floating_point():
        return None
    pair = lambda v, default: (list(v) * 2 if len(v) == 1 else list(v)) if v else default  # noqa: E731
    k = pair(args[1], None)
    s = pair(args[2] if len(args) > 2 else [], k)
    p = pair(args[3] if len(args) > 3 else [0], [0, 0])
    d = pair(args[4] if len(args) > 4 else [1], [1, 1])
    ceil_mode = bool(args[5]) if len(args) > 5 else False
    if (not k or any(len(v) != 2 for v in (k, s, p, d)) or any(v <= 0 for v in (*k, *s, *d))
            or any(2 * p[i] > k[i] for i in (0, 1))):
        return None
    hw = [_pool_size(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in (0, 1)]
    if min(hw) <= 0:
        return None
    shape = (*x.shape[:2], *hw)
    return lambda a, kw: (_empty(shape, x.dtype), _empty(shape, torch.int64))


def _adaptive_avg_pool2d(args, kwargs) -> Shortcut | None:
    x, size = args[0], args[1]
    if kwargs or not _plain(x) or x.dim() != 4 or len(size) != 2 or any(s <= 0 for s in size):
        return None
    shape = (*x.shape[:2], *size)
    return lambda a, k: _empty(shape, x.dtype)


_SHORTCUTS: dict[Any, Callable[[Sequence[Any], Mapping[str, Any]], Shortcut | None]] = {
    aten.addmm.default: _addmm,
    aten.add.Tensor: _binary, aten.mul.Tensor: _binary, aten.sub.Tensor: _binary,
    aten.mean.dim: _mean,
    aten.cat.default: _cat,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
}


def meta_shortcut(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Shortcut | None:
    """A function ``(args, kwargs) -> output`` giving ``func``'s output on meta tensors without running its
    kernel, or None when ``func`` or these arguments are not a case handled here."""
    shortcut = _profiler_shortcut(func, args, kwargs)
    if shortcut is not None:
        return shortcut
    rule = _SHORTCUTS.get(func)
    if rule is None or not args:
        return None
    try:
        return rule(args, kwargs)
    except (TypeError, ValueError, IndexError, RuntimeError):   # an argument form not foreseen: the real kernel
        return None
