"""Batched image augmentation on whatever device the batch is on; no per-sample Python, no torchvision.

Horizontal flip, rotation, translation and scale are folded into one affine matrix per image and applied
with a single ``affine_grid`` + ``grid_sample`` call; random erasing is a vectorized rectangle mask.
All randomness comes from the ``generator`` passed in, so a seeded generator gives the same batch every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


__all__ = ["AugmentConfig", "augment", "random_affine", "random_erasing"]

@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True                                  # mirror left-right with probability 1/2
    rotate_deg: float = 10.0                           # rotation drawn uniformly from +-rotate_deg degrees
    translate_frac: float = 0.1                        # shift drawn from +-translate_frac of the image side
    scale_range: tuple[float, float] = (0.9, 1.1)      # zoom factor drawn uniformly from this range
    erase_prob: float = 0.0                            # probability of erasing one rectangle per image
    erase_area: tuple[float, float] = (0.02, 0.2)      # erased rectangle's share of the image area

    def __post_init__(self):
        if self.rotate_deg < 0 or not 0 <= self.translate_frac < 1:
            raise ValueError(f"rotate_deg must be >= 0 and translate_frac in [0, 1), got {self.rotate_deg}, "
                             f"{self.translate_frac}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if not 0 <= self.erase_prob <= 1:
            raise ValueError(f"erase_prob must be in [0, 1], got {self.erase_prob}")
        a, b = self.erase_area
        if not 0 < a <= b <= 1:
            raise ValueError(f"erase_area must be (low, high) within (0, 1], got {self.erase_area}")

    @property
    def geometric(self) -> bool:
        return self.flip or self.rotate_deg > 0 or self.translate_frac > 0 or self.scale_range != (1.0, 1.0)


def augment(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None,
            *, fill: float = 0.0) -> torch.Tensor:
    """Augment a float batch ``(N, C, H, W)``; returns a new tensor on the same device.

    ``fill`` is the value for pixels that come from outside the image and for erased rectangles (0 = black
    when ``x`` is in [0, 1]). ``generator`` must live on ``x``'s device.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise TypeError(f"augment expects a float (N, C, H, W) batch, got {tuple(x.shape)} {x.dtype}")
    if config.geometric:
        x = random_affine(x, flip=config.flip, rotate_deg=config.rotate_deg,
                          translate_frac=config.translate_frac, scale_range=config.scale_range,
                          generator=generator, fill=fill)
    if config.erase_prob > 0:
        x = random_erasing(x, prob=config.erase_prob, area=config.erase_area, generator=generator, fill=fill)
    return x


def _uniform(n: int, low: float, high: float, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g, device=x.device, dtype=x.dtype) * (high - low) + low


def random_affine(x: torch.Tensor, *, flip: bool = True, rotate_deg: float = 0.0, translate_frac: float = 0.0,
                  scale_range: tuple[float, float] = (1.0, 1.0), generator: torch.Generator | None = None,
                  fill: float = 0.0) -> torch.Tensor:
    """Per-image flip, rotation, translation and scale in one ``grid_sample`` (bilinear)."""
    n = x.shape[0]
    angle = _uniform(n, -rotate_deg, rotate_deg, x, generator) * (math.pi / 180)
    scale = _uniform(n, scale_range[0], scale_range[1], x, generator)
    # affine_grid works in [-1, 1] coordinates, so a shift of a fraction f of the side is 2 f.
    tx = _uniform(n, -translate_frac, translate_frac, x, generator) * 2
    ty = _uniform(n, -translate_frac, translate_frac, x, generator) * 2
    mirror = torch.ones(n, device=x.device, dtype=x.dtype)
    if flip:
        mirror = torch.where(torch.rand(n, generator=generator, device=x.device) < 0.5, -mirror, mirror)
    # The grid maps output coordinates to input ones: the inverse of "zoom by scale, rotate by angle".
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx], 1),
                         torch.stack([sin * mirror, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if fill == 0.0:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # grid_sample pads with zeros only: shift so that the fill value is zero, then shift back.
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def random_erasing(x: torch.Tensor, *, prob: float = 0.5, area: tuple[float, float] = (0.02, 0.2),
                   generator: torch.Generator | None = None, fill: float = 0.0) -> torch.Tensor:
    """With probability ``prob`` per image, set one random rectangle (``area`` share, aspect 1/3..3) to ``fill``."""
    n, _, h, w = x.shape
    share = _uniform(n, area[0], area[1], x, generator)
    log_aspect = _uniform(n, math.log(1 / 3), math.log(3), x, generator)
    aspect = torch.exp(log_aspect)
    eh = (torch.sqrt(share * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(share / aspect) * w).clamp(1, w)
    top = _uniform(n, 0, 1, x, generator) * (h - eh)
    left = _uniform(n, 0, 1, x, generator) * (w - ew)
    on = torch.rand(n, generator=generator, device=x.device) < prob
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & on.view(n, 1, 1))
    return torch.where(mask.unsqueeze(1), torch.full_like(x, fill), x)
