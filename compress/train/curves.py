"""A run's training curves: loss and accuracy per epoch, the figure ``fit(..., out=)`` writes as ``curves.png``.

It reads a history (the rows of ``history.json``) and never trains; matplotlib is imported on first use
(:mod:`compress._plot`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from compress._plot import pyplot, save_figure

__all__ = ["training_curves"]


def training_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike, *,
                    title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Loss and accuracy against epoch, train and validation, from a run's per-epoch history.

    ``history`` rows hold ``epoch`` and any of ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``
    (accuracies as fractions in [0, 1]).
    """
    if not history:
        raise ValueError("training_curves: history is empty")
    plt = pyplot()
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label, ax in (("train_loss", "train", ax_loss), ("val_loss", "validation", ax_loss),
                           ("train_acc", "train", ax_acc), ("val_acc", "validation", ax_acc)):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs: whole numbers (a fractional last pass
        # is plotted where it ends, between ticks)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)
