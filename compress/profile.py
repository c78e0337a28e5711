"""Exact, documented counts for any ``nn.Module``: parameters, MACs, FLOPs, activation memory, file sizes.

``profile(model, input_shape)`` runs one forward pass under ``torch.no_grad`` with a ``TorchDispatchMode`` that
sees every aten op, including the ones inside modules and the ones written functionally (``F.conv2d``, ``a @ b``,
``x + y``, ``torch.cat``). Each op goes to the handle registered for it in ``HANDLES`` (fvcore's shape: a plain
registry of typed handle functions keyed by op); ops without a handle are listed in ``Profile.unsupported`` with
their call counts instead of being counted as zero. Forward pre/post hooks attribute each op to the innermost
module running it: two global hooks (``register_module_forward_pre_hook``/``register_module_forward_hook``) that
ignore modules outside the model and are removed when the forward ends, even on error. The forward runs in eval
mode (BatchNorm's statistics are not updated) and every module's ``training`` flag is restored afterwards.

By default the forward runs on the ``meta`` device (``torch.func.functional_call`` with meta copies of the
parameters and buffers), so only shapes are computed: fast, and the model's tensors are never touched. A model
that cannot run on meta tensors (data-dependent control flow, CPU tensors made inside ``forward``) is run for real
on zeros, with cloned buffers; ``Profile.executed_on`` says which happened.

Counting conventions
--------------------
- ``macs``: multiply-accumulates of convolutions and matrix products (conv, mm, addmm, bmm, baddbmm, mv, dot,
  attention kernels), bias excluded: the papers' "mult-adds" (MobileNetV1/V2, ResNet). BatchNorm is not in ``macs``.
  A module called twice counts twice.
- ``flops`` = 2 x ``macs`` plus, per op (``kind`` in brackets):
  bias additions of conv/addmm/baddbmm/addmv: 1 per output element (``matmul``);
  batch norm (eval, folded into one scale and one shift): 2 per element (``norm``);
  layer/group/instance norm: 5 per element, plus 2 with an affine weight (``norm``);
  arithmetic and activations (add, mul, relu, hardtanh, sigmoid, ...): 1 per output element (``elementwise``);
  max/avg pooling: kernel-size per output element; adaptive pooling: 1 per input element (``pool``);
  reductions (mean, sum, amax, ...): 1 per input element (``reduction``); softmax: 3 per element (``softmax``);
  bilinear upsampling: 4 per output element (``elementwise``).
  Copies, concatenation, padding, indexing and allocation are ``memory`` ops (0 FLOPs); views are ``shape`` ops.
- ``param_count``: all parameters, a tensor shared by several modules counted once; ``trainable_param_count`` and
  ``frozen_param_count`` split it by ``requires_grad``; ``norm_param_count`` is the part inside normalization layers
  (papers leave it out). ``buffer_count``: elements of all buffers (BatchNorm's running stats and
  ``num_batches_tracked``). ``state_dict_count``: elements over every key of ``state_dict()`` (what
  ``sum(v.numel() for v in sd.values())`` gives; a tied tensor counts under each of its keys).
- ``activation_bytes``: bytes of every tensor produced by a non-view, non-in-place op during the forward at the
  given batch size (memory written). ``peak_activation_bytes``: the most bytes held at once by such tensors (the
  input and the weights excluded), from their lifetimes under ``no_grad``.
- ``file_size_bytes``: bytes actually written for the state_dict by ``torch.save`` and ``np.savez`` to an
  in-memory buffer, with floating tensors as float32 and as float16 (integer tensors unchanged). ``torch.save``
  names its zip records after the file's stem ("archive" for a buffer), so a file with a longer or shorter stem
  differs by that many bytes per record; ``archive.pt`` matches exactly.
"""

from __future__ import annotations

import copy
import io
import math
import warnings
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

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


# --- shape-only shortcuts ------------------------------------------------------------------------------------------
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


def _shortcut(func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Callable | None:
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


def _handle_for(func: Any, handles: Mapping[Any, Handle]) -> Handle | None:
    handle = handles.get(func.overloadpacket)
    if handle is None and getattr(func, "is_view", False):
        return _shape
    return handle


# --- recording one forward pass -------------------------------------------------------------------------------


@dataclass(slots=True)
class OpRecord:
    """One call of one aten op: where it ran (innermost module name, ``""`` for the root) and what it cost."""

    op: str
    module: str
    kind: str
    macs: int
    flops: int
    bias_adds: int
    in_numel: int
    out_shape: tuple[int, ...]
    out_bytes: int


@dataclass
class Layer:
    """One row of the per-layer table: a call of a leaf module, or one functional op run by a container."""

    name: str
    type: str
    output_shape: tuple[int, ...] | None = None
    param_count: int = 0
    macs: int = 0
    flops: int = 0
    share: float = 0.0  # of total MACs, 0..1

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["output_shape"] = list(self.output_shape) if self.output_shape is not None else None
        return d


def _output_shape(out: Any) -> tuple[int, ...] | None:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return tuple(o.shape)
    if isinstance(out, dict):
        return _output_shape(list(out.values()))
    return None


class _Recorder(TorchDispatchMode):
    """Counts each aten op with its handle and attributes it to the module on top of ``stack``."""

    def __init__(self, handles: Mapping[Any, Handle]):
        super().__init__()
        self.handles = handles
        self.records: list[OpRecord] = []
        self.layers: list[Layer] = []
        self.stack: list[tuple[str, Layer | None]] = [("", None)]
        self.live: dict[int, list[int]] = {}  # storage id -> [tensors alive, bytes]
        self.live_bytes = 0
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        shortcut = _shortcut(func, args, kwargs)
        out = shortcut(args, kwargs) if shortcut is not None else func(*args, **kwargs)
        handle = _handle_for(func, self.handles)
        try:
            count = handle(args, kwargs, out) if handle is not None else OpCount("unsupported")
        except Exception:  # a rule that cannot read these arguments: report the op, never guess
            count = OpCount("unsupported")
        module, layer = self.stack[-1]
        is_view = count.kind == "shape"
        mutates = func._schema.is_mutable
        out_bytes = 0 if is_view or mutates else self._track(out)
        if is_view:
            self._track_view(out)
        first = _first(out)
        shape = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
        self.records.append(OpRecord(str(func.overloadpacket).removeprefix("aten."), module, count.kind, count.macs,
                                     count.flops, count.bias_adds, _numel(args[0]) if args else 0, shape, out_bytes))
        if not is_view:
            if layer is None:  # a functional op run by a container (or the root): a row of its own
                layer = Layer(f"{module or '(root)'}:{self.records[-1].op}", self.records[-1].op, shape)
                self.layers.append(layer)
            layer.macs += count.macs
            layer.flops += count.flops
        return out

    def _tensors(self, out: Any) -> Iterable[torch.Tensor]:
        items = out if isinstance(out, (tuple, list)) else (out,)
        return (t for t in items if isinstance(t, torch.Tensor))

    def _track(self, out: Any) -> int:
        total = 0
        for t in self._tensors(out):
            try:
                storage = t.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse or nested outputs have no single storage
                continue
            key, nbytes = storage._cdata, storage.nbytes()
            total += nbytes
            entry = self.live.get(key)
            if entry is None:
                self.live[key] = entry = [0, nbytes]
                self.live_bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            entry[0] += 1
            weakref.finalize(t, self._release, key)
        return total

    def _track_view(self, out: Any) -> None:
        for t in self._tensors(out):  # a view keeps its base's storage alive
            try:
                key = t.untyped_storage()._cdata
            except (RuntimeError, NotImplementedError):
                continue
            entry = self.live.get(key)
            if entry is not None:
                entry[0] += 1
                weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is not None:
            entry[0] -= 1
            if entry[0] == 0:
                self.live_bytes -= entry[1]
                del self.live[key]


def _run_forward(model: nn.Module, shape: tuple[int, ...], *, on_meta: bool, dtype: torch.dtype | None,
                 handles: Mapping[Any, Handle]) -> _Recorder:
    """One forward under ``no_grad`` and eval mode, with hooks that are always removed and flags restored."""
    recorder = _Recorder(handles)
    names: dict[nn.Module, str] = {m: n for n, m in model.named_modules()}
    # a root with no children is a layer only when it is a torch.nn layer: a user's functional forward gets one
    # row per op instead
    leaves = {m for m in names if not m._modules and (m is not model or type(m).__module__.startswith("torch."))}
    calls: Counter[nn.Module] = Counter()
    seen_params: set[int] = set()

    def pre(module: nn.Module, args: Any) -> None:
        name = names.get(module)
        if name is None:  # not ours (the hooks are global for the duration of the forward)
            return
        calls[module] += 1
        layer = None
        if module in leaves:  # one row per call, holding every op it runs
            n = calls[module]
            params = [p for p in module._parameters.values() if p is not None and id(p) not in seen_params]
            seen_params.update(id(p) for p in params)
            layer = Layer(name if n == 1 else f"{name}#{n}", type(module).__name__,
                          param_count=sum(p.numel() for p in params))
            recorder.layers.append(layer)
        recorder.stack.append((name, layer))

    def post(module: nn.Module, args: Any, out: Any) -> None:
        if module not in names:
            return
        _, layer = recorder.stack.pop()
        if layer is not None:
            layer.output_shape = _output_shape(out)

    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    first = next(iter(tensors.values()), None)
    if dtype is None:
        dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    device = torch.device("meta") if on_meta else (first.device if first is not None else torch.device("cpu"))
    memo: dict[int, torch.Tensor] = {}
    for name, t in tensors.items():  # meta copies (or cloned buffers) so the model's own tensors stay untouched
        if id(t) not in memo:
            # requires_grad kept: torch.matmul picks mm or bmm by it, and the records should match a real run
            memo[id(t)] = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta",
                                              requires_grad=t.requires_grad) if on_meta else (
                t if isinstance(t, nn.Parameter) else t.clone())
        tensors[name] = memo[id(t)]
    x = torch.zeros(shape, dtype=dtype, device=device)

    training = {m: m.training for m in names}
    hooks = []
    try:
        # two global hooks instead of two per module: registering 2 x 128 handles cost more than the forward
        hooks.append(register_module_forward_pre_hook(pre))
        hooks.append(register_module_forward_hook(post, always_call=True))
        for m in names:  # eval mode without calling each module's train(): restored the same way below
            m.training = False
        with torch.no_grad(), recorder:
            out = torch.func.functional_call(model, tensors, (x,))
        del out
    finally:
        for h in hooks:
            h.remove()
        for m, flag in training.items():
            m.training = flag
    return recorder


# --- the result ----------------------------------------------------------------------------------------------


@dataclass
class Profile:
    """Counts for one model at one input shape; see the module docstring for every convention."""

    model_type: str
    input_shape: tuple[int, ...]
    executed_on: str  # "meta" (shapes only) or the device the forward really ran on
    param_count: int
    trainable_param_count: int
    frozen_param_count: int
    norm_param_count: int
    buffer_count: int
    state_dict_count: int
    macs: int
    flops: int
    flops_by_kind: dict[str, int]
    activation_bytes: int
    peak_activation_bytes: int
    file_size_bytes: dict[str, int]  # "pt_fp32", "pt_fp16", "npz_fp32", "npz_fp16"; {} when not serialized
    unsupported: dict[str, int]  # op -> calls that no handle could count
    layers: list[Layer] = field(repr=False)
    records: list[OpRecord] = field(repr=False)

    @property
    def norm_flops(self) -> int:
        """FLOPs of normalization layers, which ``macs`` leaves out (reported separately)."""
        return self.flops_by_kind.get("norm", 0)

    def by_operator(self) -> dict[str, int]:
        """MACs per aten op (ops with MACs only)."""
        out: dict[str, int] = defaultdict(int)
        for r in self.records:
            if r.macs:
                out[r.op] += r.macs
        return dict(out)

    def by_module(self) -> dict[str, int]:
        """MACs per module name, each including its submodules (``""`` is the whole model)."""
        out: dict[str, int] = defaultdict(int)
        for r in self.records:
            parts = r.module.split(".") if r.module else []
            for i in range(len(parts) + 1):
                out[".".join(parts[:i])] += r.macs
        return dict(out)

    def to_dict(self, *, layers: bool = True) -> dict[str, Any]:
        """Plain JSON-able dict of the totals (and the per-layer table unless ``layers=False``)."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("layers", "records")}
        d["input_shape"] = list(self.input_shape)
        d["norm_flops"] = self.norm_flops
        d["by_operator"] = self.by_operator()
        if layers:
            d["layers"] = [layer.to_dict() for layer in self.layers]
        return d

    def table(self, *, max_rows: int | None = None) -> str:
        """The per-layer table and the totals, as text."""
        rows = [(layer.name, layer.type, "x".join(map(str, layer.output_shape or ())) or "-",
                 f"{layer.param_count:,}", f"{layer.macs:,}", f"{100 * layer.share:.1f}%") for layer in self.layers]
        if max_rows is not None and len(rows) > max_rows:
            rows = rows[:max_rows] + [(f"... {len(rows) - max_rows} more", "", "", "", "", "")]
        head = ("layer", "type", "output", "params", "MACs", "share")
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
        fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), "  ".join("-" * w for w in widths), *(fmt.format(*r) for r in rows)]
        outside = self.param_count - sum(layer.param_count for layer in self.layers)
        lines += [
            "",
            f"input {'x'.join(map(str, self.input_shape))}  (ran on {self.executed_on})",
            f"params {self.param_count:,}  (trainable {self.trainable_param_count:,}, frozen "
            f"{self.frozen_param_count:,}, in norm layers {self.norm_param_count:,}"
            + (f", outside leaf layers {outside:,}" if outside else "") + ")",
            f"buffers {self.buffer_count:,} elements; state_dict {self.state_dict_count:,} elements",
            f"MACs {self.macs:,} (conv + matmul, bias excluded)",
            f"FLOPs {self.flops:,} = 2 x MACs + " + ", ".join(
                f"{k} {v:,}" for k, v in self.flops_by_kind.items() if k != "matmul" and v)
            + f" + bias {sum(r.bias_adds for r in self.records):,}",
            f"activations {self.activation_bytes:,} bytes written, peak {self.peak_activation_bytes:,} bytes",
        ]
        if self.file_size_bytes:
            lines.append("file bytes " + ", ".join(f"{k} {v:,}" for k, v in self.file_size_bytes.items()))
        if self.unsupported:
            where: dict[str, set[str]] = defaultdict(set)
            for r in self.records:
                if r.kind == "unsupported":
                    where[r.op].add(r.module or "(root)")
            lines.append("NOT COUNTED (no handle): " + ", ".join(
                f"{k} x{v} in {', '.join(sorted(where[k]))}" for k, v in self.unsupported.items()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# --- public entry point ----------------------------------------------------------------------------------------


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


def state_dict_file_bytes(model: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, int]:
    """Bytes that ``torch.save`` and ``np.savez`` really write for the state_dict, as float32 and float16."""
    state = model.state_dict() if state is None else state
    if any(t.is_meta for t in state.values()):
        return {}
    sizes = {}
    for tag, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
        cast = _state_dict_cast(state, dtype)
        buf = io.BytesIO()
        torch.save(cast, buf)
        sizes[f"pt_{tag}"] = buf.getbuffer().nbytes
        buf = io.BytesIO()
        np.savez(buf, **{k: v.numpy() for k, v in cast.items()})
        sizes[f"npz_{tag}"] = buf.getbuffer().nbytes
    return {k: sizes[k] for k in ("pt_fp32", "pt_fp16", "npz_fp32", "npz_fp16")}


_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def _tensor_counts(model: nn.Module) -> dict[str, int]:
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
        **_tensor_counts(model),
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


# --- cross-check against other counters ----------------------------------------------------------------------


@dataclass
class CounterResult:
    """One external counter's total next to ours, with the reasons for the difference computed from the data."""

    name: str
    available: bool
    error: str | None = None  # why it did not run (import failed, it raised)
    total: float | None = None  # as that counter reports it, in ``unit``
    unit: str = ""  # "MACs" (one multiply-add counts one) or "FLOPs" (two per multiply-add)
    macs_equivalent: int | None = None  # ``total`` in our unit
    difference: int | None = None  # macs_equivalent - our macs
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, reasons=list(self.reasons))


@dataclass
class Comparison:
    """``ours`` (a ``Profile``) and each counter's result; ``str()`` renders them side by side."""

    ours: Profile
    counters: list[CounterResult]

    def to_dict(self) -> dict[str, Any]:
        return {"ours": {"macs": self.ours.macs, "flops": self.ours.flops, "norm_flops": self.ours.norm_flops,
                         "unsupported": self.ours.unsupported},
                "counters": [c.to_dict() for c in self.counters]}

    def table(self) -> str:
        lines = [f"{'counter':<14} {'reported':>16} {'unit':<6} {'as MACs':>16} {'vs ours':>14}",
                 f"{'compress':<14} {self.ours.macs:>16,} {'MACs':<6} {self.ours.macs:>16,} {0:>14,}"]
        for c in self.counters:
            if not c.available:
                lines.append(f"{c.name:<14} not available: {c.error}")
                continue
            lines.append(f"{c.name:<14} {c.total:>16,.0f} {c.unit:<6} {c.macs_equivalent:>16,} {c.difference:>+14,}")
        for c in self.counters:
            if c.available and c.reasons:
                lines += ["", f"{c.name}:", *(f"  - {r}" for r in c.reasons)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _per_leaf(ours: Profile, model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """Leaf modules by name, and our records summed per leaf (MACs, bias adds, input elements, FLOPs by kind)."""
    leaves = {name: m for name, m in model.named_modules() if not m._modules and name}
    per: dict[str, dict[str, Any]] = {}
    for r in ours.records:
        if r.module in leaves:
            d = per.setdefault(r.module, {"macs": 0, "bias": 0, "in_numel": 0, "kinds": Counter()})
            d["macs"] += r.macs
            d["bias"] += r.bias_adds
            if r.kind not in ("shape", "memory"):
                d["in_numel"] += r.in_numel
                d["kinds"][r.kind] += r.flops
    return leaves, per


def _explain_by_module(theirs: Mapping[str, float], total: float, ours: Profile, model: nn.Module,
                       name: str) -> list[str]:
    """Group per-leaf differences (their count minus our MACs) by module type and say what each one is."""
    leaves, per = _per_leaf(ours, model)
    groups: dict[str, dict[str, Any]] = {}
    for leaf, module in leaves.items():
        g = groups.setdefault(type(module).__name__, {"theirs": 0, "macs": 0, "bias": 0, "in_numel": 0,
                                                      "kinds": Counter(), "n": 0})
        mine = per.get(leaf, {"macs": 0, "bias": 0, "in_numel": 0, "kinds": Counter()})
        g["theirs"] += int(theirs.get(leaf, 0))
        g["n"] += 1
        for k in ("macs", "bias", "in_numel"):
            g[k] += mine[k]
        g["kinds"].update(mine["kinds"])
    reasons = []
    for typ, g in groups.items():
        d = g["theirs"] - g["macs"]
        if d == 0:
            continue
        if g["macs"] and d == g["bias"]:
            reasons.append(f"counts the bias additions of {g['n']} {typ}: {d:+,} (our records: {g['bias']:,} bias "
                           f"adds, which MACs exclude)")
        elif g["macs"] == 0 and g["in_numel"]:
            kinds = "/".join(k for k, v in g["kinds"].items() if v) or "no arithmetic"
            reasons.append(f"counts {g['n']} {typ} ({kinds}), which papers' MACs exclude: {d:+,} = "
                           f"{d / g['in_numel']:g} per input element over {g['in_numel']:,} elements"
                           + (f" (our {kinds} FLOPs for them: {sum(g['kinds'].values()):,})" if g["kinds"] else ""))
        elif g["theirs"] == 0:
            reasons.append(f"does not count {g['n']} {typ}: {d:+,} (our MACs for them: {g['macs']:,})")
        else:
            reasons.append(f"{typ}: {name} {g['theirs']:,} vs our {g['macs']:,} MACs ({d:+,})")
    their_rest = int(total) - sum(int(theirs.get(leaf, 0)) for leaf in leaves)
    outside = [r for r in ours.records if r.module not in leaves and r.macs]
    our_rest = sum(r.macs for r in outside)
    if their_rest != our_rest:
        ops = ", ".join(f"{op} x{n}" for op, n in Counter(r.op for r in outside).items()) or "none"
        reasons.append(f"ops run outside leaf modules (functional code; ours: {ops}): {name} {their_rest:,} vs our "
                       f"{our_rest:,} MACs ({their_rest - our_rest:+,})")
    return reasons


def _flops_by_op(ours: Profile) -> dict[str, tuple[int, str]]:
    out: dict[str, list] = {}
    for r in ours.records:
        entry = out.setdefault(r.op.rstrip("_"), [0, r.kind])
        entry[0] += r.flops
    return {k: (v[0], v[1]) for k, v in out.items()}


def _run_fvcore(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    with warnings.catch_warnings():  # torch.jit deprecation notices from fvcore's tracing, not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
    reasons = ["unit: one multiply-add counts one flop, the same unit as our MACs"]
    reasons += _explain_by_module(analysis.by_module(), total, ours, model, "fvcore")
    mine = _flops_by_op(ours)
    for op, calls in analysis.unsupported_ops().items():
        base = op.split("::")[-1].rstrip("_")
        matches = [v for k, v in mine.items() if k == base or k.startswith(base + "_")]  # max_pool2d_with_indices
        flops, kind = sum(v[0] for v in matches), "/".join(sorted({v[1] for v in matches})) or "no handle"
        reasons.append(f"skips {op} x{calls} as 'unsupported' (counted 0); ours counts it in FLOPs only "
                       f"({kind}: {flops:,})")
    return CounterResult("fvcore", True, total=total, unit="MACs", macs_equivalent=int(total),
                         difference=int(total) - ours.macs, reasons=reasons)


def _run_thop(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    import thop

    total, _, tree = thop.profile(model, inputs=(x,), verbose=False, ret_layer_info=True)
    flat: dict[str, float] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, (ops, _params, children) in node.items():
            flat[prefix + key] = ops
            walk(children, prefix + key + ".")

    walk(tree, "")
    reasons = ["unit: MACs, from forward hooks on modules with a rule (plus functional matmul/linear/einsum)"]
    reasons += _explain_by_module(flat, total, ours, model, "thop")
    return CounterResult("thop", True, total=total, unit="MACs", macs_equivalent=int(total),
                         difference=int(total) - ours.macs, reasons=reasons)


def _run_flop_counter(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    total = counter.get_total_flops()
    theirs = {str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    mine = ours.by_operator()
    reasons = [f"unit: FLOPs, 2 per multiply-add: {total:,} / 2 = {total // 2:,} MACs; bias, norms and "
               f"elementwise ops are not counted (ours: {ours.flops - 2 * ours.macs:,} such FLOPs)"]
    for op in sorted(set(theirs) | set(mine)):
        t, m = theirs.get(op, 0) // 2, mine.get(op, 0)
        if t != m:
            reasons.append(f"{op}: flop_counter {t:,} vs our {m:,} MACs ({t - m:+,})")
    return CounterResult("flop_counter", True, total=total, unit="FLOPs", macs_equivalent=total // 2,
                         difference=total // 2 - ours.macs, reasons=reasons)


_COUNTERS = {"fvcore": _run_fvcore, "thop": _run_thop, "flop_counter": _run_flop_counter}


def compare(model: nn.Module, input_shape: Sequence[int], *, counters: Sequence[str] = tuple(_COUNTERS),
            ours: Profile | None = None) -> Comparison:
    """Run fvcore's ``FlopCountAnalysis``, ``thop.profile`` and ``torch.utils.flop_counter.FlopCounterMode`` on a
    deep copy of ``model`` in eval mode (zeros input, the model's device and dtype) and put their totals next to
    our MACs, each with the reasons for the difference computed from our records (per module type: BatchNorm,
    pooling, bias, activations; functional ops; ops a counter skips). A counter that cannot be imported or fails
    is reported as not available, with the error. Raises like ``profile`` for bad input, ``ValueError`` for an
    unknown counter name.
    """
    unknown = [c for c in counters if c not in _COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter(s) {unknown}; known: {list(_COUNTERS)}")
    ours = ours if ours is not None else profile(model, input_shape, serialize=False)
    first = next(iter(model.parameters()), None)
    results = []
    for name in counters:
        try:
            copy_ = copy.deepcopy(model).eval()  # thop and fvcore run real forwards; the original stays as it is
            x = torch.zeros(ours.input_shape, device=first.device if first is not None else "cpu",
                            dtype=first.dtype if first is not None and first.is_floating_point() else torch.float32)
            result = _COUNTERS[name](copy_, x, ours)
            if ours.unsupported:
                result.reasons.append("ours has no handle for " + ", ".join(
                    f"{op} x{n}" for op, n in ours.unsupported.items()) + f"; {name} may count them")
            results.append(result)
        except Exception as exc:  # ImportError included: each counter is optional
            results.append(CounterResult(name, False, error=f"{type(exc).__name__}: {exc}"))
    return Comparison(ours, results)
