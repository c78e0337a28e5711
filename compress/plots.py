"""All matplotlib figures. Functions here read results (histories, results files, arrays) and never train.

Every figure is written with :func:`save_figure`, atomically, as PNG (and SVG when asked).
matplotlib is imported lazily with the non-interactive Agg backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from compress._io import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike, *, formats: Iterable[str] = ("png",), dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (``"png"``, ``"svg"``), atomically; close it."""
    plt = _plt()
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


def training_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike, *,
                    title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Loss and accuracy against epoch, train and validation, from a run's per-epoch history.

    ``history`` rows hold ``epoch`` and any of ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``
    (accuracies as fractions in [0, 1]).
    """
    if not history:
        raise ValueError("training_curves: history is empty")
    plt = _plt()
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label, ax in (("train_loss", "train", ax_loss), ("val_loss", "validation", ax_loss),
                           ("train_acc", "train", ax_acc), ("val_acc", "validation", ax_acc)):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)
