"""Saliency maps (input gradient, SmoothGrad) and the model-randomization sanity check."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from compress.device import model_device
from compress.explain.confusion import output_width
from compress.data.bundle import Normalizer
from compress.explain.inputs import check_images, eval_mode, model_input
from compress.train.inference import predict

__all__ = ["SALIENCY_METHODS", "saliency", "rank_correlation", "reinitialized", "RandomizationCheck",
           "randomization_check"]

SALIENCY_METHODS = ("gradient", "smoothgrad")


def saliency(model: nn.Module, images: torch.Tensor, *, target: int | torch.Tensor | None = None,
             method: str = "gradient", normalizer: Normalizer | None = None, n_samples: int = 25,
             noise_level: float = 0.15, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """Saliency maps (float32, N, H, W, on CPU): |d score_target / d input|, max over channels.

    ``images`` are model inputs (float) or uint8 with ``normalizer``. ``target``: class per image (None: the
    predicted class), one int for all, or an int64 tensor (N,). The score is the target's logit (pre-softmax,
    as in Simonyan et al. 2014). ``method="smoothgrad"`` averages the map over ``n_samples`` copies with
    Gaussian noise of std ``noise_level`` x (max - min) of each image (Smilkov et al. 2017), seeded by ``seed``.
    The model runs in eval mode; its parameters' ``.grad`` are not touched.

    Raises ``ValueError`` for a bad shape, method, target or sample count.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(SALIENCY_METHODS)}")
    if method == "smoothgrad" and (n_samples < 1 or noise_level < 0):
        raise ValueError(f"smoothgrad needs n_samples >= 1 and noise_level >= 0, got {n_samples}, {noise_level}")
    check_images(images, "images")
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    maps = []
    with eval_mode(model):
        targets = _targets(model, images, target, normalizer, device)
        for i in range(0, len(images), batch_size):
            x = model_input(images[i:i + batch_size], normalizer, device)
            t = targets[i:i + batch_size].to(device)
            if method == "gradient":
                maps.append(_gradient_map(model, x, t))
                continue
            span = (x.amax((1, 2, 3), keepdim=True) - x.amin((1, 2, 3), keepdim=True))
            total = torch.zeros(x.shape[0], *x.shape[2:], device=device)
            for _ in range(n_samples):
                noise = torch.randn(x.shape, generator=gen).to(device) * (noise_level * span)
                total += _gradient_map(model, x + noise, t)
            maps.append(total / n_samples)
    return torch.cat(maps).float().cpu()


def _gradient_map(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = model(x).gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad.abs().amax(1)


def _targets(model: nn.Module, images: torch.Tensor, target: Any, normalizer: Normalizer | None,
             device: torch.device) -> torch.Tensor:
    n = len(images)
    if target is None:
        return predict(model, images, normalizer)
    t = torch.as_tensor(target)
    if t.dtype.is_floating_point or t.ndim > 1 or (t.ndim == 1 and len(t) != n):
        raise ValueError(f"target: expected an int or {n} integer class indices, got {tuple(t.shape)} {t.dtype}")
    t = t.long().expand(n) if t.ndim == 0 else t.long()
    k = output_width(model, images[:1], normalizer)
    if t.min() < 0 or t.max() >= k:
        raise ValueError(f"target: class indices must lie in [0, {k - 1}], got {t.min()}..{t.max()}")
    return t


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two same-shaped tensors (flattened); ties get arbitrary distinct ranks."""
    a, b = a.flatten().double(), b.flatten().double()
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"rank_correlation: need two tensors of the same size >= 2, got {a.numel()}, {b.numel()}")
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


def reinitialized(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every module's ``reset_parameters()`` called (BatchNorm statistics reset too):
    same architecture, fresh random weights. The global RNG state is left as it was."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in clone.modules():
            reset_stats, reset = getattr(m, "reset_running_stats", None), getattr(m, "reset_parameters", None)
            if reset_stats is not None:
                reset_stats()
            if callable(reset):
                reset()
    return clone


@dataclass(frozen=True)
class RandomizationCheck:
    """Model-randomization sanity check (Adebayo et al. 2018): a saliency method that explains the model must
    give different maps once the learned weights are replaced by random ones."""

    method: str
    rank_correlations: list[float]       # Spearman correlation, trained vs re-initialized, per image

    @property
    def mean(self) -> float:
        return sum(self.rank_correlations) / len(self.rank_correlations)


def randomization_check(model: nn.Module, images: torch.Tensor, *, method: str = "gradient",
                        normalizer: Normalizer | None = None, target: Any = None, n_samples: int = 25,
                        noise_level: float = 0.15, seed: int = 0) -> RandomizationCheck:
    """Saliency of ``model`` vs the same architecture re-initialized (:func:`reinitialized`), for the same images
    and target classes (the trained model's predictions when ``target`` is None); options as :func:`saliency`.
    Low correlation passes the check."""
    check_images(images, "images")
    if target is None:
        target = predict(model, images, normalizer)
    kw = dict(method=method, normalizer=normalizer, target=target, n_samples=n_samples, noise_level=noise_level,
              seed=seed)
    trained = saliency(model, images, **kw)
    random = saliency(reinitialized(model, seed=seed), images, **kw)
    return RandomizationCheck(method, [rank_correlation(a, b) for a, b in zip(trained, random)])
