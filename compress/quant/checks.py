"""What every codec refuses: non-finite weights, and an encoding that loses the bulk of a tensor.

Hostile weights. A floating tensor holding NaN or inf is refused (ValueError naming the tensor and the first bad
index): one NaN would otherwise turn a whole k-means tensor or int8 row into NaN or zeros. Outliers are kept,
never clipped, but a few can stretch a grid until the rest of the tensor collapses (one 1e6 among weights of
0.1: int8 per tensor decodes them all to 0, k-means to one centroid); such an encoding is refused, naming the
tensor and the outlier, when the *bulk* of the tensor (all but its largest 1% magnitudes) decodes with an RMS
error of ``BULK_ERROR_LIMIT`` (90%) of its RMS or more -- no better than storing zeros. Legitimate encodings
stay far below it (int8: about 1%; k-means 1-bit on Gaussian weights: 60%).
"""

from __future__ import annotations

import math

import torch

__all__ = ["BULK_ERROR_LIMIT", "require_finite", "check_bulk_error"]

BULK_ERROR_LIMIT = 0.9   # refuse an encoding whose RMS error on the bulk (all but the top 1% |w|) is >= this x its RMS


def require_finite(w: torch.Tensor, name: str = "tensor") -> None:
    """Raise ValueError naming ``name`` if the floating tensor ``w`` holds NaN or inf values."""
    if not w.is_floating_point() or w.numel() == 0:
        return
    bad = ~torch.isfinite(w.detach())
    if bad.any():
        first = int(bad.reshape(-1).nonzero()[0, 0])
        raise ValueError(f"{name} (shape {tuple(w.shape)}) holds {int(bad.sum())} non-finite value(s) (NaN or inf), "
                         f"the first at flat index {first} = {w.reshape(-1)[first].item()}; codecs store finite "
                         f"weights only")


def check_bulk_error(w: torch.Tensor, decoded: torch.Tensor, what: str, name: str = "tensor") -> None:
    """Raise ValueError naming ``name`` if ``decoded`` loses the bulk of ``w`` (see the module docstring)."""
    flat = w.detach().reshape(-1).to(torch.float64)
    n_bulk = flat.numel() - max(1, math.ceil(flat.numel() / 100))
    if n_bulk < 1:
        return
    order = torch.argsort(flat.abs(), stable=True)[:n_bulk]
    bulk = flat[order]
    rms = bulk.square().mean().sqrt().item()
    if rms == 0.0:
        return
    err = (decoded.detach().reshape(-1).to(torch.float64)[order] - bulk).square().mean().sqrt().item()
    if err >= BULK_ERROR_LIMIT * rms:
        peak = flat.abs().max().item()
        raise ValueError(f"{name} (shape {tuple(w.shape)}): {what} would decode the bulk of the weights (RMS "
                         f"{rms:.3g}) with an RMS error of {err / rms:.0%}: outliers up to |w| = {peak:.4g} "
                         f"stretch its grid; store this model with the fp32 or fp16 codec")
