"""matplotlib, lazily and without a display, and figures saved atomically: what every figure in compress uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from compress._io import atomic_path

__all__ = ["pyplot", "save_figure", "as_numpy"]


def pyplot():
    """``matplotlib.pyplot`` with the non-interactive Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, *, formats: Iterable[str] = ("png",), dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (``"png"``, ``"svg"``), atomically; close it."""
    plt = pyplot()
    base = Path(path).with_suffix("")
    written = []
    try:
        for fmt in formats:
            target = base.with_suffix("." + fmt)
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
            written.append(target)
    finally:
        plt.close(fig)
    return written


def as_numpy(a: Any):
    """A tensor (any device) or array-like as a numpy array."""
    import numpy as np

    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)
