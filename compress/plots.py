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


# --- explain figures ---
# Figures for compress.explain. They take arrays (tensors or numpy) and names, never a model.

def _np(a: Any):
    import numpy as np

    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _grid_shape(n: int, max_cols: int) -> tuple[int, int]:
    cols = max(1, min(n, max_cols))
    return (n + cols - 1) // cols, cols


def _display(image: Any):
    """(C, H, W) -> (H, W) or (H, W, 3) scaled to [0, 1] for imshow (min-max per image)."""
    import numpy as np

    img = _np(image).astype(np.float64)
    img = img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def confusion_matrix(counts: Any, class_names: Sequence[str], path: str | os.PathLike, *,
                     title: str | None = None, formats: Iterable[str] = ("png",)) -> list[Path]:
    """Row-normalized confusion matrix as a heatmap (rows: true class), each cell annotated with its rate
    and count."""
    import numpy as np

    plt = _plt()
    counts = _np(counts).astype(np.int64)
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
    plt = _plt()
    images, maps = _np(images), _np(maps)
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
    plt = _plt()
    images = _np(images)
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

    plt = _plt()
    maps = _np(maps).astype(np.float64)
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


# --- sweep figures ---

_FAMILY_STYLE = {"mobilenet_v1": ("C0", "o"), "mobilenet_v2": ("C4", "D"), "cnn": ("C1", "s"), "mlp": ("C2", "^")}
_X_LABELS = {"param_count": "parameters", "macs": "MACs (batch 1)", "bytes_fp16": "fp16 artifact bytes",
             "bytes_int8": "int8 artifact bytes", "bytes_fp32": "fp32 artifact bytes"}


def _style(family: str, index: int) -> tuple[str, str]:
    return _FAMILY_STYLE.get(family, (f"C{(index + 5) % 10}", "v"))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats with fewer-or-equal x and higher-or-equal y, sorted by x."""
    front, best = [], -float("inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def accuracy_vs(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *, x: str = "param_count",
                limits: Sequence[float] = (), formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Mean accuracy (with its 95% interval as error bars) against ``x`` on a log axis, one series per family,
    and the Pareto front over all points. ``rows`` come from :func:`compress.sweep.summarize` (variant "full");
    ``limits`` draws vertical lines (byte limits)."""
    rows = [r for r in rows if r["variant"] == "full" and r.get("acc") and r.get(x)]
    if not rows:
        raise ValueError(f"accuracy_vs: no results with {x!r} to plot")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    families = sorted({r["family"] for r in rows})
    for i, family in enumerate(families):
        rs = sorted((r for r in rows if r["family"] == family), key=lambda r: r[x])
        color, marker = _style(family, i)
        xs = [r[x] for r in rs]
        ys = [100 * r["acc"]["mean"] for r in rs]
        err = [[100 * (r["acc"]["mean"] - r["acc"]["low"]) for r in rs],
               [100 * (r["acc"]["high"] - r["acc"]["mean"]) for r in rs]]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, capsize=3, label=f"{family}")
    front = pareto_front([(r[x], 100 * r["acc"]["mean"]) for r in rows])
    ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", alpha=0.35, linestyle="--",
            label="Pareto front")
    for limit in limits:
        ax.axvline(limit, color="r", alpha=0.5, linestyle=":")
        ax.annotate(f"{limit:,.0f} B", (limit, ax.get_ylim()[0]), rotation=90, va="bottom", ha="right",
                    fontsize=8, color="r")
    metric = rows[0].get("metric", "acc")
    ax.set(xscale="log", xlabel=_X_LABELS.get(x, x),
           ylabel=f"{'test' if metric == 'test_acc' else 'validation'} accuracy (%)",
           title=f"accuracy vs {_X_LABELS.get(x, x)} (mean, 95% CI over seeds)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)


def latency_vs(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
               formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """CPU batch-1 latency against MACs and against parameters, per family (log-log): where FLOPs and
    latency part ways."""
    rows = [r for r in rows if r["variant"] == "full" and r.get("latency_ms") and r.get("macs")]
    if not rows:
        raise ValueError("latency_vs: no results with latency to plot")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8), sharey=True)
    for ax, x in zip(axes, ("macs", "param_count")):
        for i, family in enumerate(sorted({r["family"] for r in rows})):
            rs = sorted((r for r in rows if r["family"] == family), key=lambda r: r[x])
            color, marker = _style(family, i)
            ax.plot([r[x] for r in rs], [r["latency_ms"] for r in rs], color=color, marker=marker, label=family)
        ax.set(xscale="log", yscale="log", xlabel=_X_LABELS[x])
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("latency (ms, CPU, batch 1, 1 thread)")
    axes[0].legend(fontsize=8)
    fig.suptitle("latency vs MACs and parameters")
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)


def training_curves_grid(runs: Sequence[tuple[str, Sequence[Mapping[str, float]]]], path: str | os.PathLike, *,
                         formats: Iterable[str] = ("png", "svg")) -> list[Path]:
    """Loss (top) and accuracy (bottom) against epoch for several runs side by side: ``[(label, history)]``."""
    if not runs:
        raise ValueError("training_curves_grid: no runs")
    plt = _plt()
    fig, axes = plt.subplots(2, len(runs), figsize=(3.4 * len(runs), 5.2), squeeze=False)
    for col, (label, history) in enumerate(runs):
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
        for row_i, (kind, name) in enumerate((("loss", "loss"), ("acc", "accuracy"))):
            ax = axes[row_i][col]
            for split, style in (("train", "-"), ("val", "--")):
                values = [h.get(f"{split}_{kind}") for h in history]
                if any(v is not None for v in values):
                    ax.plot(epochs, values, style, marker="o", markersize=3,
                            label="train" if split == "train" else "validation")
            ax.set(xlabel="epoch", ylabel=name)
            ax.grid(alpha=0.3)
            if row_i == 0:
                ax.set_title(label, fontsize=9)
        axes[0][col].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, formats=formats)
