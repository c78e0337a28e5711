"""K models of one architecture as one model: grouped convolutions, stacked BatchNorm, batched linear layers.

``stack_models(models)`` returns a module that takes the K members' inputs side by side on the channel axis,
``(N, K * C, H, W)``, and returns their outputs side by side, ``(N, K * classes)``. Every convolution becomes one
convolution with ``K`` times the groups (member ``k`` owns channel block ``k``), every BatchNorm one BatchNorm over
``K`` times the channels (statistics stay per channel, so per member), every Linear one batched matmul
(:class:`StackedLinear`). Activations, pooling, dropout and residual adds act per channel already.
Each member's forward and backward are exactly its own; only the kernels are shared, which on a CPU removes
``K - 1`` of every op's fixed overhead and on a GPU fills the device.

Every tensor of the stacked state is the members' tensors concatenated on dim 0 (a Linear's weight is stored
``(K * out, in)``), so :func:`stack_state` and :func:`unstack_state` are plain ``cat`` / ``chunk`` over a
state_dict, and the same holds for an optimizer's per-parameter state. Grouped convolutions are what
``torch.func.vmap`` lowers a convolution with batched weights to; done directly they skip vmap's per-op
dispatch (``benchmarks/bench_fused.py`` measures both).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from compress import blocks
from compress.models import builder

__all__ = ["StackedLinear", "stack_models", "stack_state", "unstack_state", "stack_inputs", "split_outputs"]

# Modules without parameters that act on each channel (or feature) on its own, so K members side by side on the
# channel axis never mix. Anything else (a LayerNorm, a softmax over channels) cannot be stacked this way.
_PER_CHANNEL = (nn.ReLU, nn.ReLU6, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.Tanh,
                nn.Sigmoid, nn.Identity, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout)
# Modules whose own forward only composes their children with per-channel ops (means over space, residual adds).
_COMPOSITES = (nn.Sequential, builder.ConvNet, builder.MLP, blocks.DepthwiseSeparableConv, blocks.SqueezeExcite,
               blocks.InvertedResidual)


class StackedLinear(nn.Module):
    """K Linear layers applied side by side: ``(N, K * in) -> (N, K * out)``; weight ``(K * out, in)``."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members * out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k = x.shape[0], self.members
        xt = x.reshape(n, k, self.in_features).permute(1, 2, 0)                # (K, in, N), a view
        w = self.weight.view(k, self.out_features, self.in_features)
        # W @ X^T keeps the weight's gradient in its own layout (X @ W^T would copy a transposed one back).
        if self.bias is None:
            y = torch.bmm(w, xt)
        else:
            y = torch.baddbmm(self.bias.view(k, self.out_features, 1), w, xt)  # (K, out, N)
        return y.permute(2, 0, 1).reshape(n, k * self.out_features)


def _stack_leaf(m: nn.Module, k: int, name: str) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        if m.padding_mode != "zeros":
            raise ValueError(f"stack_models: {name} pads with {m.padding_mode!r}; only zero padding is stacked")
        # Any: torch's stub types a conv's sizes as _ConvNd's tuple[int, ...], Conv2d takes pairs
        sizes: dict[str, Any] = dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                     dilation=m.dilation)
        return nn.Conv2d(k * m.in_channels, k * m.out_channels, groups=k * m.groups, bias=m.bias is not None, **sizes)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return type(m)(k * m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                       track_running_stats=m.track_running_stats)
    if isinstance(m, nn.Linear):
        return StackedLinear(k, m.in_features, m.out_features, bias=m.bias is not None)
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError(f"stack_models: {name} flattens dims {m.start_dim}..{m.end_dim}; only Flatten(1)")
        return nn.Flatten(1)
    if isinstance(m, _PER_CHANNEL):
        return copy.deepcopy(m)
    raise ValueError(f"stack_models: cannot stack {name} ({type(m).__name__}); stackable: Conv2d, Linear, "
                     "BatchNorm, Flatten(1), activations, pooling, dropout and compress's blocks")


def _stack_module(m: nn.Module, k: int, name: str) -> nn.Module:
    children = list(m.named_children())
    if not children:
        return _stack_leaf(m, k, name or type(m).__name__)
    if not isinstance(m, _COMPOSITES):
        raise ValueError(f"stack_models: cannot stack {name or 'the model'} ({type(m).__name__}): its forward "
                         "is not known to act per channel")
    if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
        raise ValueError(f"stack_models: {name or 'the model'} holds its own parameters; cannot stack it")
    out = copy.copy(m)                                   # same class and attributes, new children
    out._modules = {}
    for child_name, child in children:
        out.add_module(child_name, _stack_module(child, k, f"{name}.{child_name}" if name else child_name))
    return out


def stack_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The stacked model's state_dict from the members' (each tensor concatenated on dim 0; counters shared)."""
    out = {}
    for key, first in states[0].items():
        out[key] = first.clone() if first.ndim == 0 else torch.cat([s[key] for s in states], 0)
    return out


def unstack_state(state: dict[str, torch.Tensor], members: int) -> list[dict[str, torch.Tensor]]:
    """The members' state_dicts from the stacked one (copies, on the same device)."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(members)]
    for key, value in state.items():
        parts = [value] * members if value.ndim == 0 else value.chunk(members, 0)
        for k, part in enumerate(parts):
            out[k][key] = part.detach().clone()
    return out


def stack_models(models: list[nn.Module]) -> nn.Module:
    """One module training ``len(models)`` same-architecture models at once, initialized with their weights.

    Raises ValueError when the models differ in architecture or contain a layer that cannot be stacked.
    """
    if not models:
        raise ValueError("stack_models: no models given")
    k = len(models)
    states = [m.state_dict() for m in models]
    shapes = {key: tuple(v.shape) for key, v in states[0].items()}
    for i, s in enumerate(states[1:], 1):
        if {key: tuple(v.shape) for key, v in s.items()} != shapes or type(models[i]) is not type(models[0]):
            raise ValueError(f"stack_models: model {i} has another architecture than model 0")
    stacked = _stack_module(models[0], k, "")
    if hasattr(stacked, "card"):
        setattr(stacked, "card", None)                    # a training-time object, not a model to rebuild
    stacked.load_state_dict(stack_state(states))
    return stacked.to(next(iter(states[0].values())).device) if states[0] else stacked


def stack_inputs(xs: list[torch.Tensor]) -> torch.Tensor:
    """K batches ``(N, C, H, W)`` -> the stacked model's input ``(N, K * C, H, W)``."""
    x = torch.stack(xs, 1)
    return x.reshape(x.shape[0], -1, *x.shape[3:])


def split_outputs(out: torch.Tensor, members: int) -> torch.Tensor:
    """The stacked model's output ``(N, K * classes)`` -> ``(K, N, classes)``."""
    return out.view(out.shape[0], members, -1).transpose(0, 1)


def member_losses(out: torch.Tensor, ys: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each member on its own labels ``ys`` ``(K, N)``: a ``(K,)`` tensor of batch means."""
    k, n = ys.shape
    logits = split_outputs(out, k).reshape(k * n, -1)
    return F.cross_entropy(logits, ys.reshape(-1), reduction="none", label_smoothing=label_smoothing).view(k, n).mean(1)
