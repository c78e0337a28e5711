"""Counting rules: a plain registry of typed handle functions keyed by aten op (fvcore's shape).

Each handle maps one call of one op to an :class:`OpCount`; the conventions are in :mod:`compress.profile`'s
docstring. ``register_handle(op, ...)`` adds a rule; a duplicate raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = ["KINDS", "OpCount", "Handle", "HANDLES", "register_handle"]

aten = torch.ops.aten

KINDS = ("matmul", "norm", "elementwise", "pool", "reduction", "softmax", "memory", "shape", "unsupported")


@dataclass(frozen=True)
class OpCount:
    """What one op costs: its ``kind`` (see ``KINDS``), multiply-accumulates, FLOPs, and bias additions."""

    kind: str
    macs: int = 0
    flops: int = 0
    bias_adds: int = 0


Handle = Callable[[Sequence[Any], Mapping[str, Any], Any], OpCount]
"""A counting rule: ``handle(args, kwargs, output) -> OpCount`` for one call of one aten op."""

HANDLES: dict[Any, Handle] = {}
"""The registry: aten op (``OpOverloadPacket``, e.g. ``torch.ops.aten.convolution``) -> handle."""


def register_handle(*ops: Any) -> Callable[[Handle], Handle]:
    """Register ``handle`` for each op; an op that already has a handle raises ``ValueError``."""

    def deco(handle: Handle) -> Handle:
        for op in ops:
            if op in HANDLES:
                raise ValueError(f"op {op} already has a counting handle")
            HANDLES[op] = handle
        return handle

    return deco


def _ops(*names: str) -> list[Any]:
    """The aten packets with these names and their in-place ``_`` variants, skipping names this torch lacks."""
    found = []
    for name in names:
        for variant in (name, name + "_"):
            if hasattr(aten, variant) and getattr(aten, variant) not in found:
                found.append(getattr(aten, variant))
    return found


def _numel(x: Any) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# --- multiply-accumulates --------------------------------------------------------------------------------------


@register_handle(aten.convolution, aten._convolution)
def _conv(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """out x (in/groups) x kernel for a conv; in x (out/groups) x kernel for a transposed conv (weight shape
    ``(in, out/groups, *k)``). Bias adds one per output element."""
    x, w, bias, transposed = args[0], args[1], args[2], args[6]
    per = math.prod(w.shape[1:])
    macs = (x.numel() if transposed else out.numel()) * per
    bias_adds = out.numel() if bias is not None else 0
    return OpCount("matmul", macs, 2 * macs + bias_adds, bias_adds)


@register_handle(aten.mm, aten.bmm, aten.mv)
def _product(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """One multiply-accumulate per output element per element of the contracted axis."""
    macs = out.numel() * args[0].shape[-1]
    return OpCount("matmul", macs, 2 * macs)


@register_handle(aten.addmm, aten.baddbmm, aten.addmv)
def _product_with_bias(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Like ``mm``/``bmm``/``mv``, plus one bias addition per output element (``F.linear`` with a bias)."""
    macs = out.numel() * args[1].shape[-1]
    return OpCount("matmul", macs, 2 * macs + out.numel(), out.numel())


@register_handle(aten.dot, aten.vdot)
def _dot(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    macs = args[0].numel()
    return OpCount("matmul", macs, 2 * macs)


_ATTENTION = [getattr(aten, n) for n in (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
) if hasattr(aten, n)]


@register_handle(*_ATTENTION)
def _attention(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Fused attention: the query-key product and the attention-value product (softmax not counted)."""
    q, k, v = args[:3]
    macs = math.prod(q.shape[:-1]) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    return OpCount("matmul", macs, 2 * macs)


# --- normalization -----------------------------------------------------------------------------------------------

_BATCH_NORM = _ops("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
                   "_native_batch_norm_legit_functional", "_batch_norm_no_update", "_batch_norm_with_update",
                   "cudnn_batch_norm", "miopen_batch_norm")


@register_handle(*_BATCH_NORM)
def _batch_norm(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Eval-mode batch norm folds into one scale and one shift: 2 FLOPs per element, no MACs."""
    return OpCount("norm", 0, 2 * args[0].numel())


def _norm_with_statistics(weight_arg: int) -> Handle:
    def handle(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
        """Statistics at run time (mean 1, variance 2, normalize 2 per element) plus 2 with an affine weight."""
        affine = len(args) > weight_arg and args[weight_arg] is not None
        return OpCount("norm", 0, (7 if affine else 5) * args[0].numel())

    return handle


register_handle(*_ops("native_layer_norm"))(_norm_with_statistics(2))  # (input, shape, weight, bias, eps)
register_handle(*_ops("native_group_norm"))(_norm_with_statistics(1))  # (input, weight, bias, N, C, HxW, ...)


# --- elementwise, pooling, reductions ----------------------------------------------------------------------------

_ELEMENTWISE = _ops(
    "add", "sub", "rsub", "mul", "div", "neg", "abs", "pow", "sqrt", "rsqrt", "reciprocal", "exp", "log",
    "relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max", "leaky_relu", "gelu", "silu", "mish",
    "hardswish", "hardsigmoid", "sigmoid", "tanh", "elu", "softplus", "threshold", "prelu", "_prelu_kernel",
    "maximum", "minimum", "where", "masked_fill", "lerp", "addcmul", "addcdiv", "erf", "sin", "cos", "sign",
    "floor", "ceil", "round", "remainder", "fmod", "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "bitwise_not",
)


@register_handle(*_ELEMENTWISE)
def _elementwise(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """One FLOP per output element (arithmetic, comparisons and activations alike)."""
    return OpCount("elementwise", 0, _numel(_first(out)))


@register_handle(*_ops("upsample_bilinear2d", "upsample_linear1d", "upsample_bicubic2d"))
def _interpolate(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Four FLOPs per output element (fvcore's bilinear rule)."""
    return OpCount("elementwise", 0, 4 * _numel(out))


def _pool(dims: int) -> Handle:
    def handle(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
        """One FLOP (compare or add) per kernel element per output element."""
        kernel = list(args[1] if len(args) > 1 else kwargs["kernel_size"])
        kernel = kernel * dims if len(kernel) == 1 else kernel  # a single size stands for every spatial dim
        return OpCount("pool", 0, _numel(_first(out)) * math.prod(kernel))

    return handle


for _dims in (1, 2, 3):
    register_handle(*_ops(f"max_pool{_dims}d", f"max_pool{_dims}d_with_indices", f"avg_pool{_dims}d"))(_pool(_dims))


@register_handle(*_ops("adaptive_avg_pool1d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_avg_pool3d",
                       "_adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d"))
def _adaptive_pool(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """One FLOP per input element."""
    return OpCount("pool", 0, args[0].numel())


@register_handle(*_ops("mean", "sum", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "var", "std",
                       "var_mean", "std_mean", "logsumexp", "norm", "linalg_vector_norm", "cumsum", "all", "any"))
def _reduction(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """One FLOP per input element."""
    return OpCount("reduction", 0, _numel(args[0]))


@register_handle(*_ops("_softmax", "_log_softmax", "_safe_softmax", "softmax", "log_softmax"))
def _softmax(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Three FLOPs per element: exponential, sum, division."""
    return OpCount("softmax", 0, 3 * args[0].numel())


_MEMORY = _ops(
    "cat", "stack", "clone", "copy", "_to_copy", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d",
    "repeat", "index", "_unsafe_index", "index_select", "gather", "scatter", "scatter_add", "index_put", "embedding",
    "flip", "roll", "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "fill", "zero", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full",
    "scalar_tensor", "arange", "lift_fresh_copy", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "im2col", "col2im", "tril",
    "triu", "masked_select", "bernoulli", "native_dropout",
)


@register_handle(*_MEMORY)
def _memory(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Data movement and allocation: no FLOPs (their bytes still count as activation memory)."""
    return OpCount("memory")


_SHAPE = _ops("_unsafe_view", "_reshape_alias", "lift_fresh", "detach", "alias", "_local_scalar_dense",
              "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "is_same_size", "resolve_conj",
              "resolve_neg")


@register_handle(*_SHAPE)
def _shape(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> OpCount:
    """Views and metadata: free."""
    return OpCount("shape")
