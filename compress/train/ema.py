"""Exponential moving average of a model's weights, with timm's warm-up."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["Ema"]


class Ema:
    """Exponential moving average of the weights; buffers (BatchNorm statistics) are copied."""

    def __init__(self, model: nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        self.decay, self.steps = decay, 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        # Warm-up (as in timm/TF): short runs must not average in the random initial weights.
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for eb, b in zip(self.model.buffers(), model.buffers()):
            eb.copy_(b)
