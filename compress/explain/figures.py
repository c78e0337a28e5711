"""Figures of the explain section. They take arrays (tensors or numpy) and names, never a model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from compress._plot import as_numpy, pyplot, save_figure

__all__ = ["confusion_matrix", "saliency_maps", "filter_grid", "activation_grid"]


def _grid_shape(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return (n + cols - 1) // cols, cols


def _display(image: Any):
    """(C, H, W) -> (H, W) or (H, W, 3) scaled to [0, 1] for imshow (min-max per image)."""
    import numpy as np

    img = as_numpy(image).astype(np.float64)
    img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def confusion_matrix(counts: Any, class_names: Sequence[str], path: str | os.PathLike, *,
                     title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Row-normalized confusion matrix as a heatmap (rows: true class), each cell annotated with its rate
    and count."""
    import numpy as np

    plt = pyplot()
    counts = as_numpy(counts).astype(np.int64)
    k = counts.shape[0]
    if counts.shape != (k, k) or len(class_names) != k:
        raise ValueError(f"confusion_matrix: counts {counts.shape} and {len(class_names)} class names disagree")
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = 1.6 + 0.75 * k
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{rates[i, j]:.2f}\n{counts[i, j]}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.55 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (row-normalized)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)


def saliency_maps(images: Any, maps: Any, path: str | os.PathLike, *, titles: Sequence[str] | None = None,
                  max_cols: int = 7, title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Each example as two panels: the image, and the saliency map (hot colors) over the grayscale image.

    ``images`` (N, C, H, W) any scale (shown min-max), ``maps`` (N, H, W).
    """
    plt = pyplot()
    images, maps = as_numpy(images), as_numpy(maps)
    n = len(images)
    if n == 0 or maps.shape != (n, *images.shape[2:]):
        raise ValueError(f"saliency_maps: images {images.shape} and maps {maps.shape} disagree (or are empty)")
    rows, cols = _grid_shape(n, max_cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(1.6 * cols, 3.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, cols)
        img = _display(images[i])
        m = maps[i] / maps[i].max() if maps[i].max() > 0 else maps[i]
        axes[2 * r, c].imshow(img, cmap="gray", vmin=0, vmax=1)
        if titles:
            axes[2 * r, c].set_title(titles[i], fontsize=7)
        axes[2 * r + 1, c].imshow(img if img.ndim == 2 else img.mean(-1), cmap="gray", vmin=0, vmax=1)
        axes[2 * r + 1, c].imshow(m, cmap="jet", alpha=0.5, vmin=0, vmax=1)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(wspace=0.08, hspace=0.35)  # tight_layout costs seconds on dozens of axes
    return save_figure(fig, path, formats=formats)


def filter_grid(images: Any, path: str | os.PathLike, *, titles: Sequence[str] | None = None, max_cols: int = 8,
                title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Images found by gradient ascent (F, C, H, W), one panel each, min-max scaled per panel."""
    plt = pyplot()
    images = as_numpy(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"filter_grid: expected images (F, C, H, W), got {images.shape}")
    rows, cols = _grid_shape(len(images), max_cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.55 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, img in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(_display(img), cmap="gray", vmin=0, vmax=1)
        if titles:
            ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(wspace=0.08, hspace=0.35)  # tight_layout costs seconds on dozens of axes
    return save_figure(fig, path, formats=formats)


def activation_grid(maps: Any, path: str | os.PathLike, *, max_maps: int = 32, max_cols: int = 8,
                    title: str | None = None, image: Any = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """A layer's feature maps for one image (C, H, W), the first ``max_maps`` channels on one shared color scale
    (so weak channels look weak); a Linear layer's units (F,) as one square heatmap, row-major.
    ``image`` (C, H, W), when given, is drawn first."""
    import numpy as np

    plt = pyplot()
    maps = as_numpy(maps).astype(np.float64)
    if maps.ndim == 1:
        side = int(np.ceil(np.sqrt(len(maps))))
        square = np.full(side * side, np.nan)
        square[:len(maps)] = maps
        panels, shown = [("", square.reshape(side, side))], f"{len(maps)} units (row-major)"
    elif maps.ndim == 3:
        panels, shown = [(f"ch {i}", m) for i, m in enumerate(maps[:max_maps])], None
    else:
        raise ValueError(f"activation_grid: expected maps (C, H, W) or (F,), got {maps.shape}")
    vmin, vmax = np.nanmin(maps[:max_maps]), np.nanmax(maps[:max_maps])
    n = len(panels) + (image is not None)
    rows, cols = _grid_shape(n, max_cols if maps.ndim == 3 else 2)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 0.8, 1.45 * rows + 0.5) if maps.ndim == 3
                             else (7, 3.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    flat = list(axes.flat)
    if image is not None:
        flat[0].imshow(_display(image), cmap="gray")
        flat[0].set_title("input", fontsize=7)
        flat = flat[1:]
    for ax, (name, m) in zip(flat, panels):
        im = ax.imshow(m, cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_title(shown or name, fontsize=7)
    fig.colorbar(im, ax=list(axes.flat), fraction=0.02, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, formats=formats)
