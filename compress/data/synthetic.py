"""Synthetic data for tests: learnable class-dependent patterns, deterministic for a seed."""

from __future__ import annotations

import numpy as np

from compress.data.bundle import DataBundle, _as_hw, _bundle, stratified_split

__all__ = ["synthetic", "parse_synthetic"]


def synthetic(n: int = 600, num_classes: int = 4, size: int = 16, seed: int = 0, *, in_chans: int = 1,
              val_fraction: float = 0.1, test_fraction: float = 0.2,
              input_size: int | tuple[int, int] | None = None) -> DataBundle:
    """``n`` images of ``num_classes`` learnable patterns, deterministic for ``seed``.

    Two cues per class, so both convolutional and fully connected models learn it in a few epochs: a stripe
    grating at the class's own orientation (``k * 180 / num_classes`` degrees, random phase) and a bright blob
    at the class's own place (small random shift), on a noisy background. ``source`` is a string that
    :func:`load` turns back into the same bundle.
    """
    if n < 2 * num_classes or num_classes < 2 or size < 8 or in_chans < 1:
        raise ValueError("synthetic: need num_classes >= 2, n >= 2 * num_classes, size >= 8, in_chans >= 1")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = np.pi * y / num_classes
    phase = rng.uniform(0, 2 * np.pi, n)
    freq = 2 * np.pi / (size / 3)                       # three stripes across the image
    along = np.cos(angle)[:, None, None] * cols + np.sin(angle)[:, None, None] * rows
    grating = np.sin(freq * along + phase[:, None, None])
    centers = rng.uniform(0.25 * size, 0.75 * size, size=(num_classes, 2))
    pos = centers[y] + rng.uniform(-0.08 * size, 0.08 * size, size=(n, 2))
    d2 = (rows - pos[:, 0, None, None]) ** 2 + (cols - pos[:, 1, None, None]) ** 2
    blob = np.exp(-d2 / (2 * (size / 8) ** 2))
    img = 110 + 50 * grating + 90 * blob
    img = img[:, None] + rng.normal(0, 20, size=(n, in_chans, size, size))
    x = np.clip(img, 0, 255).astype(np.uint8)
    rest, test = stratified_split(y, test_fraction, seed + 1)
    tr, va = stratified_split(y[rest], val_fraction, seed + 2)
    tr, va = rest[tr], rest[va]
    parts = {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[test], y[test])}
    source = f"synthetic:n={n},classes={num_classes},size={size},chans={in_chans},seed={seed}"
    options = {"val_fraction": val_fraction, "seed": seed, "input_size": list(_as_hw(input_size) or ()) or None,
               "skip_bad_rows": False}
    bundle = _bundle(parts, tuple(f"class{i}" for i in range(num_classes)), source, options, [],
                     _as_hw(input_size), False)
    bundle.origin = {"source": None, "test_data": None, "test_split": "source"}
    return bundle


def parse_synthetic(text: str) -> dict:
    names = {"n": "n", "classes": "num_classes", "size": "size", "chans": "in_chans", "seed": "seed"}
    out = {}
    for item in filter(None, text.partition(":")[2].split(",")):
        key, _, value = item.partition("=")
        if key.strip() not in names or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"synthetic source {text!r}: bad option {item!r} "
                             f"(known: {', '.join(names)}; integers)")
        out[names[key.strip()]] = int(value)
    return out


