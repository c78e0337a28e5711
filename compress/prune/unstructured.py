"""Unstructured magnitude pruning: which single weights to zero (structured pruning, beside it in this package,
removes whole channels). How many at each step is the schedule both share (:func:`~compress.prune.schedule.agp_sparsity`).

    names = prunable(model)                                     # conv / linear weights worth pruning
    masks = magnitude_masks({n: params[n] for n in names}, 0.9) # keep the 10% that matter most

Scope ``"global"`` ranks weights across layers by LAMP score (Lee et al. 2021, "Layer-adaptive sparsity for
the magnitude-based pruning"): ``w_i**2 / sum_{j >= i} w_j**2`` over the layer's weights sorted by magnitude,
which makes magnitudes of differently scaled layers comparable and never empties a layer (each layer's largest
weight scores 1). Scope ``"layer"`` prunes every layer to the same sparsity (Zhu & Gupta 2017).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from compress.models.layers import weight_layers

__all__ = ["SCOPES", "prunable", "lamp_scores", "magnitude_masks", "sparsity_of"]

SCOPES = ("global", "layer")


def prunable(model: nn.Module, *, min_numel: int = 1024) -> list[str]:
    """Names (state_dict keys) of the weights of conv and linear layers with at least ``min_numel`` elements
    (:func:`compress.models.layers.weight_layers`, the one layer selection); smaller ones (a 1-channel stem,
    narrow depthwise kernels) cost few bytes and hurt most when pruned."""
    return [f"{name}.weight" if name else "weight" for name, _ in weight_layers(model, min_numel=min_numel)]


def lamp_scores(w: torch.Tensor) -> torch.Tensor:
    """LAMP score of each weight (same shape): squared magnitude over the sum of the squares of itself and all
    larger weights of the tensor."""
    sq = w.detach().float().reshape(-1) ** 2
    order = torch.argsort(sq)
    sorted_sq = sq[order]
    suffix = torch.flip(torch.cumsum(torch.flip(sorted_sq, [0]), 0), [0])
    scores = torch.empty_like(sq)
    scores[order] = sorted_sq / suffix.clamp_min(torch.finfo(torch.float32).tiny)
    return scores.reshape(w.shape)


def magnitude_masks(weights: Mapping[str, torch.Tensor], sparsity: float, *,
                    scope: str = "global") -> dict[str, torch.Tensor]:
    """Boolean keep-masks zeroing a ``sparsity`` fraction of all the given weights (by count), the smallest by
    LAMP score (``"global"``) or by magnitude within each layer (``"layer"``). Raises ValueError for a bad
    sparsity or scope."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    if scope not in SCOPES:
        raise ValueError(f"pruning scope must be one of {SCOPES}, got {scope!r}")
    if scope == "layer":
        return {n: _keep_largest(w.detach().abs().float(), sparsity) for n, w in weights.items()}
    scores = {n: lamp_scores(w) for n, w in weights.items()}
    flat = torch.cat([s.reshape(-1) for s in scores.values()]) if scores else torch.zeros(0)
    n_prune = int(round(sparsity * flat.numel()))
    if n_prune == 0:
        return {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    threshold = torch.kthvalue(flat, n_prune).values
    masks = {n: s > threshold for n, s in scores.items()}
    # ties at the threshold: prune exactly n_prune in all, in a fixed order (deterministic)
    short = n_prune - sum(int((~m).sum()) for m in masks.values())
    for n, s in scores.items():
        if short <= 0:
            break
        tied = torch.nonzero((s.reshape(-1) == threshold) & masks[n].reshape(-1)).reshape(-1)[:short]
        masks[n].view(-1)[tied] = False
        short -= tied.numel()
    return masks


def _keep_largest(magnitude: torch.Tensor, sparsity: float) -> torch.Tensor:
    n_prune = int(round(sparsity * magnitude.numel()))
    keep = torch.ones(magnitude.numel(), dtype=torch.bool)
    if n_prune:
        keep[torch.argsort(magnitude.reshape(-1), stable=True)[:n_prune]] = False
    return keep.reshape(magnitude.shape)


def sparsity_of(tensors: Mapping[str, torch.Tensor]) -> float:
    """Fraction of exact zeros over all elements of the given tensors."""
    total = sum(t.numel() for t in tensors.values())
    return sum(int((t == 0).sum()) for t in tensors.values()) / max(total, 1)
