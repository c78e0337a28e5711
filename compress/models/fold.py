"""BatchNorm folding, a graph transform: each BatchNorm that directly follows a conv or linear layer goes into
that layer's weight and bias. The model's card records how many were folded (``card.bn_folded``)."""

from __future__ import annotations

import copy
from typing import Union, cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from compress.models.card import card_of

__all__ = ["fold_batchnorm", "count_batchnorm"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLD_RULES = ((nn.Linear, nn.BatchNorm1d), (nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d),
               (nn.Conv3d, nn.BatchNorm3d))
_Layer = Union[nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d]   # the layers of _FOLD_RULES


def _pairs_fx(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, bn) qualified names where the layer's output feeds only that BN, from a torch.fx trace."""
    import torch.fx

    graph = torch.fx.symbolic_trace(model).graph
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or len(node.users) != 1:
            continue
        (user,) = node.users
        if user.op == "call_module" and calls[node.target] == 1 and calls[user.target] == 1:
            pairs.append((node.target, user.target))
    return pairs


def _pairs_sequential(model: nn.Module) -> list[tuple[str, str]]:
    """(layer, bn) pairs of consecutive children of ``nn.Sequential`` containers."""
    pairs = []
    for prefix, mod in model.named_modules():
        if isinstance(mod, nn.Sequential):
            names = list(mod._modules)
            for a, b in zip(names, names[1:]):
                pairs.append((f"{prefix}.{a}" if prefix else a, f"{prefix}.{b}" if prefix else b))
    return pairs


def _foldable(layer: nn.Module, bn: nn.Module) -> bool:
    if not isinstance(bn, _BN) or not bn.track_running_stats or bn.running_var is None:
        return False
    for layer_type, bn_type in _FOLD_RULES:
        if isinstance(layer, layer_type):
            out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
            return isinstance(bn, bn_type) and out == bn.num_features
    return False


def _fold_pair(layer: _Layer, bn: _BatchNorm) -> None:
    """y = gamma * (Wx + b - mean) / sqrt(var + eps) + beta  =>  W' = W * s, b' = (b - mean) * s + beta."""
    assert bn.running_var is not None and bn.running_mean is not None  # _foldable: the BN tracks its statistics
    with torch.no_grad():
        var, mean = bn.running_var.to(torch.float64), bn.running_mean.to(torch.float64)
        gamma = bn.weight.to(torch.float64) if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.to(torch.float64) if bn.bias is not None else torch.zeros_like(var)
        s = gamma / torch.sqrt(var + bn.eps)
        w = layer.weight
        bias = layer.bias.to(torch.float64) if layer.bias is not None else torch.zeros_like(var)
        new_w = (w.to(torch.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).to(w.dtype)
        new_b = ((bias - mean) * s + beta).to(w.dtype)
        layer.weight.copy_(new_w)
        if layer.bias is None:
            layer.bias = nn.Parameter(new_b)
        else:
            layer.bias.copy_(new_b)


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def fold_batchnorm(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv or linear layer into that layer's weight and bias,
    and replace the BatchNorm by ``nn.Identity``. The layer gains a bias if it had none.

    The pairs come from a torch.fx trace (a layer whose only consumer is a BN, each called once); models
    that do not trace fall back to consecutive children of ``nn.Sequential``. BN after an activation
    (``order="act_norm"``) is left alone. Eval-mode outputs match the original within float tolerance;
    in training mode the folded model no longer normalises by batch statistics. Returns the folded model
    (a deep copy unless ``inplace``); its card's ``bn_folded`` grows by the number folded.
    """
    if not inplace:
        model = copy.deepcopy(model)
    try:
        pairs = _pairs_fx(model)
    except Exception:  # noqa: BLE001 - any trace failure (control flow, custom ops) means: use the fallback
        pairs = _pairs_sequential(model)
    count = 0
    for layer_name, bn_name in pairs:
        layer, bn = model.get_submodule(layer_name), model.get_submodule(bn_name)
        if _foldable(layer, bn):
            _fold_pair(cast(_Layer, layer), cast(_BatchNorm, bn))   # the types _foldable checked
            _set_submodule(model, bn_name, nn.Identity())
            count += 1
    card = card_of(model)   # a compress family's declared field, or the plain attribute of a model from sources
    if card is not None and count:
        setattr(model, "card", card.replace(bn_folded=card.bn_folded + count))   # a plain attribute, not a module
    return model


def count_batchnorm(model: nn.Module) -> int:
    """BatchNorm layers (1d, 2d, 3d) in ``model``."""
    return sum(isinstance(m, _BN) for m in model.modules())
