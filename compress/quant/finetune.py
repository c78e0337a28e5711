"""A compact fine-tuning loop for compression: a few epochs through a :class:`WeightTransform`, optionally
distilled from the uncompressed model, with a hook per step (gradual pruning updates its masks there).

Training itself (from scratch, with history, checkpoints and run folders) is :func:`compress.train.fit`; this
loop is the small part of it that compression needs, plus the weight transform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from compress.data.augment import AugmentConfig, augment
from compress.data.bundle import DataBundle, Normalizer
from compress.quant.qat import WeightTransform
from compress.train.distill import distillation_loss

__all__ = ["FinetuneConfig", "finetune"]


@dataclass
class FinetuneConfig:
    epochs: float = 3.0                 # passes over the training split (fractions allowed)
    lr: float = 5e-4                    # peak AdamW learning rate, cosine decay to 0 per step
    batch_size: int = 128               # images per step
    weight_decay: float = 0.0           # AdamW's decoupled decay
    alpha: float = 0.5                  # weight of distillation from the uncompressed model (0: labels only)
    temperature: float = 4.0            # distillation temperature
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.epochs > 0 or not self.lr > 0 or self.batch_size < 2 or self.weight_decay < 0:
            raise ValueError("FinetuneConfig: epochs and lr must be > 0, batch_size >= 2, weight_decay >= 0")
        if not 0 <= self.alpha <= 1 or not self.temperature > 0:
            raise ValueError("FinetuneConfig: alpha must be in [0, 1] and temperature > 0")


def finetune(model: nn.Module, data: DataBundle, normalizer: Normalizer, config: FinetuneConfig, *,
             transform: WeightTransform, teacher: nn.Module | None = None, aug: AugmentConfig | None = None,
             on_step: Callable[[int, int], None] | None = None) -> nn.Module:
    """Train ``model`` in place (CPU) through ``transform`` on ``data.train`` for ``config.epochs``; returns it
    in eval mode with the transform materialized. ``on_step(step, total_steps)`` runs after every optimizer step.
    BatchNorm layers, if any, update their statistics as in training."""
    x_all, y_all = data.train.x, data.train.y
    n = len(x_all)
    bs = min(config.batch_size, n)
    steps_per_epoch = max(n // bs, 1)
    total = max(1, math.ceil(config.epochs * steps_per_epoch))
    opt = torch.optim.AdamW(transform.trainable(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    gen = torch.Generator().manual_seed(config.seed)
    if teacher is not None:
        teacher.eval()
    model.train()
    perm = torch.randperm(n, generator=gen)
    for step in range(total):
        i = step % steps_per_epoch
        if i == 0 and step:
            perm = torch.randperm(n, generator=gen)
        idx = perm[i * bs:(i + 1) * bs]
        xb = x_all[idx].float().div_(255.0)
        if aug is not None:
            xb = augment(xb, aug, gen)
        xin = normalizer.from_unit(xb)
        out = functional_call(model, transform.weights(), (xin,))
        loss = F.cross_entropy(out, y_all[idx])
        if teacher is not None and config.alpha > 0:
            with torch.no_grad():
                t_out = teacher(xin)
            loss = (1 - config.alpha) * loss + config.alpha * distillation_loss(out, t_out, config.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        transform.apply_masks()
        if on_step is not None:
            on_step(step + 1, total)
    transform.materialize()
    return model.eval()
