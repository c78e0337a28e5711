"""Precise BatchNorm: re-estimate running statistics with the current weights before evaluating."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's running mean and variance with the current weights, as a cumulative average
    over ``batches`` (model inputs) run in train mode: "precise BN", as fvcore's ``update_bn_stats``.

    The running statistics a BatchNorm keeps during training average over the last ~10 steps while the weights
    move under them; a deep narrow net trained with a high learning rate can then classify well in train mode
    and at chance in eval mode. ``fit`` feeds batches made exactly as in training (augmented), so the statistics
    describe the inputs the later layers were trained on. Leaves the model in eval mode; a model without
    BatchNorm is untouched.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None            # cumulative moving average over the batches below
    model.train()
    try:
        with torch.no_grad():
            for xb in batches:
                if len(xb) >= 2:     # BatchNorm needs two values per channel
                    model(xb)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
