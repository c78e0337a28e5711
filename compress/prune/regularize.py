"""Regularizers that prepare a model for pruning: a loss term of the model that the training loop adds at every
step, ``compress.train.fit(model, data, config, regularizer=BatchNormL1(1e-4))`` (as Torch-Pruning's
``BNScalePruner.regularize`` lives with its pruner). ``compress train --bn-l1 WEIGHT`` builds one.

    BatchNormL1   network slimming (Liu et al. 2017, sec. 3): ``weight * sum |gamma|`` over the BatchNorm layers,
                  so that the channels the ``bn`` importance ranks last have scales near zero before they are cut
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

__all__ = ["BatchNormL1"]


@dataclass(frozen=True)
class BatchNormL1:
    weight: float                       # per unit |gamma| summed over all BatchNorm scales (paper: 1e-4 .. 1e-5)

    name: ClassVar[str] = "bn_l1"       # how a run folder's config.json records it: {"name": "bn_l1", "weight": ...}

    def __post_init__(self) -> None:
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"bn_l1: the L1 weight on BatchNorm scales must be a finite number >= 0, got {w!r}")

    def __call__(self, model: nn.Module) -> torch.Tensor | float:
        """``weight * sum |gamma|`` (a stacked BatchNorm holds every member's scales: each member's gradient is
        its own); 0 for a model without BatchNorm scales."""
        return self.weight * sum(m.weight.abs().sum() for m in model.modules()
                                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None)

    def to_dict(self) -> dict:
        return {"name": self.name, "weight": self.weight}
