"""Activation ranges for int8 execution, from tensors seen on calibration images; pure numpy.

Methods (Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference", sec. 3;
Wu et al. 2020, "Integer quantization for deep learning inference", sec. 4.1):
    minmax      the smallest and largest value seen. Nothing clips; one outlier widens the step for all values.
    percentile  the ``percentile`` and ``100 - percentile`` points of all values seen (99.99 by default), read
                from a histogram of ``bins`` equal bins between the min and max of a first pass. Clips the
                rarest outliers for a finer step.
    entropy     the range whose uint8 quantization loses the least information: the KL divergence between the
                histogram clipped to the range and that histogram merged into 255 uint8 steps, minimized over
                ranges shrunk toward 0 from ``[min, max]`` (TensorRT's entropy calibration, Migacz 2017,
                "8-bit inference with TensorRT", adapted to asymmetric uint8: one window scale for both sides;
                exact zeros are left out of the histogram, since zero is exact in every range and a ReLU's
                spike of zeros would otherwise pull the window down to the narrowest one).

Calibration runs its images in batches of :func:`calibration_batch_size` (at most ``CALIBRATION_BATCH_VALUES``
input values each): a pass that keeps every activation of a batch (the ONNX writer's) grows with the batch's
pixels, so large images go a few at a time (one 1x512x512 image per pass, 64 of 1x48x48).

A range always contains 0 (zero must be exact: padding and ReLU produce it). :func:`uint8_params` turns a range
into the asymmetric uint8 ``(scale, zero_point)`` that ONNX ``QuantizeLinear`` takes.

    calib = RangeCalibrator("percentile")
    for batch in batches: calib.observe(tensors_of(batch))       # pass 1: min and max
    calib.end_pass()
    if calib.needs_second_pass:                                  # percentile, entropy
        for batch in batches: calib.observe(tensors_of(batch))   # pass 2: histograms
    ranges = calib.ranges()                                      # {name: (low, high)}
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["CALIBRATION_METHODS", "CALIBRATION_BATCH_VALUES", "RangeCalibrator", "uint8_params", "entropy_window",
           "calibration_batch_size"]

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
CALIBRATION_BATCH_VALUES = 2 ** 18   # input values per calibration pass (1 MiB of float32)
UINT8_STEPS = 255   # uint8 levels minus one: the steps a range is cut into


class RangeCalibrator:
    """Collects per-tensor statistics over calibration batches and gives each tensor's ``(low, high)`` range.

    ``method``: ``minmax``, ``percentile`` or ``entropy``; ``percentile`` (in percent, 50 < p <= 100) only
    matters for the percentile method, ``bins`` (histogram bins, count, at least 2; at least 256 for entropy)
    for both histogram methods, which need a second pass over the same batches. Raises
    ValueError for an unknown method or out-of-range settings.
    """

    def __init__(self, method: str = "minmax", *, percentile: float = 99.99, bins: int = 2048):
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
        if not 50.0 < float(percentile) <= 100.0:
            raise ValueError(f"calibration percentile must be in (50, 100], got {percentile!r}")
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
            raise ValueError(f"calibration bins must be an integer >= 2, got {bins!r}")
        if method == "entropy" and bins <= UINT8_STEPS:
            raise ValueError(f"entropy calibration needs more than {UINT8_STEPS} bins, got {bins}")
        self.method, self.percentile, self.bins = method, float(percentile), bins
        self._min: dict[str, float] = {}
        self._max: dict[str, float] = {}
        self._hist: dict[str, np.ndarray] = {}
        self._frozen = False    # True once the first pass is over (histogram edges are fixed)

    @property
    def needs_second_pass(self) -> bool:
        """After the first pass: whether :meth:`observe` must see the batches again (percentile: histograms)."""
        return self.method != "minmax" and not self._hist

    def observe(self, tensors: Mapping[str, np.ndarray]) -> None:
        """Take one batch's tensors ``{name: array}`` into account (pass 1: min/max; pass 2: histograms)."""
        for name, value in tensors.items():
            a = np.asarray(value, dtype=np.float32).reshape(-1)
            if a.size == 0:
                continue
            if not self._frozen or self.method == "minmax":
                lo, hi = float(a.min()), float(a.max())
                self._min[name] = min(lo, self._min.get(name, lo))
                self._max[name] = max(hi, self._max.get(name, hi))
                continue
            if name not in self._min:
                raise ValueError(f"tensor {name!r} was not seen in the first calibration pass")
            if self.method == "entropy":   # exact zeros (ReLU's, padding) quantize without error: not counted
                a = a[a != 0]
            hist, _ = np.histogram(a, bins=self.bins, range=self._edges(name))
            self._hist[name] = self._hist.get(name, 0) + hist

    def end_pass(self) -> None:
        """Mark the end of a pass over the batches (call once after each pass)."""
        if not self._min:
            raise ValueError("calibration saw no tensors: give at least one calibration batch")
        self._frozen = True

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``{name: (low, high)}`` with ``low <= 0 <= high``. Raises ValueError if a pass is missing."""
        if not self._min:
            raise ValueError("calibration saw no tensors: give at least one calibration batch")
        if self.method != "minmax" and not self._hist:
            raise ValueError(f"{self.method} calibration needs a second pass over the batches (see needs_second_pass)")
        pick = {"minmax": lambda n: (self._min[n], self._max[n]), "percentile": self._percentile_range,
                "entropy": self._entropy_range}[self.method]
        out = {}
        for name in self._min:
            lo, hi = pick(name)
            out[name] = (min(lo, 0.0), max(hi, 0.0))
        return out

    def _binned(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(histogram, bin edges)`` of ``name``'s activations, or None when nothing was binned."""
        hist = self._hist.get(name)
        if hist is None or hist.sum() == 0:
            return None
        return np.asarray(hist, dtype=np.float64), np.linspace(*self._edges(name), self.bins + 1)

    def _edges(self, name: str) -> tuple[float, float]:
        lo, hi = self._min[name], self._max[name]
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def _percentile_range(self, name: str) -> tuple[float, float]:
        binned = self._binned(name)
        if binned is None:
            return self._min[name], self._max[name]
        hist, edges = binned
        cdf = np.cumsum(hist) / hist.sum()
        tail = 1.0 - self.percentile / 100.0
        # the lowest bin whose cumulative share reaches the tail, read at its lower edge (and symmetrically above)
        low = edges[int(np.searchsorted(cdf, tail, side="left"))] if tail > 0 else edges[0]
        high = edges[int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1] if tail > 0 else edges[-1]
        return max(float(low), self._min[name]), min(float(high), self._max[name])

    def _entropy_range(self, name: str) -> tuple[float, float]:
        binned = self._binned(name)
        if binned is None:
            return self._min[name], self._max[name]
        hist, edges = binned
        low, high = entropy_window(hist, zero_bin=(0.0 - edges[0]) / (edges[-1] - edges[0]) * self.bins)
        return max(float(edges[low]), self._min[name]), min(float(edges[high]), self._max[name])


def entropy_window(hist: np.ndarray, zero_bin: float, *, steps: int = UINT8_STEPS, stride: int = 4
                   ) -> tuple[int, int]:
    """Bin indices ``(a, b)`` of the window ``hist[a:b]`` (every ``stride``-th width from ``steps`` bins up to
    all, shrunk toward the fractional bin index ``zero_bin`` where 0 lies) that minimizes KL(P || Q): P the
    histogram with the mass outside the window added to its edge bins, Q the window's histogram merged into
    ``steps`` equal groups, each group's mass spread evenly over its nonempty bins (Migacz 2017)."""
    n = len(hist)
    zero_bin = float(np.clip(zero_bin, 0.0, n))
    best, best_kl = (0, n), np.inf
    for width in list(range(steps, n, stride)) + [n]:
        s = width / n
        a = int(np.clip(round(zero_bin - s * zero_bin), 0, n - width))
        b = a + width
        kl = _window_kl(hist, a, b, steps)
        if kl < best_kl:
            best, best_kl = (a, b), kl
    return best


def _window_kl(hist: np.ndarray, a: int, b: int, steps: int) -> float:
    window = hist[a:b]
    p = window.copy()
    p[0] += hist[:a].sum()
    p[-1] += hist[b:].sum()
    group = np.minimum((np.arange(len(window)) * steps) // len(window), steps - 1)   # uint8 step of each bin
    nonzero = window > 0
    mass = np.bincount(group, weights=window, minlength=steps)
    count = np.bincount(group, weights=nonzero, minlength=steps)
    q = np.where(nonzero, mass[group] / np.maximum(count[group], 1), 0.0)
    keep = p > 0
    p, q = p[keep] / p.sum(), q[keep] / q.sum()
    # a clipped edge bin empty inside the window has P > 0 and Q = 0: give it a little mass (TensorRT smooths too)
    q = np.where(q > 0, q, 1e-4 / len(window))
    return float(np.sum(p * np.log(p / q)))


def calibration_batch_size(input_shape: Sequence[int], most: int = 64) -> int:
    """Images per calibration pass: at most ``most``, and at most :data:`CALIBRATION_BATCH_VALUES` input values
    (at least one image)."""
    return max(1, min(most, CALIBRATION_BATCH_VALUES // max(1, math.prod(input_shape))))


def uint8_params(low: float, high: float) -> tuple[float, int]:
    """Asymmetric uint8 quantization of ``[low, high]`` (widened to contain 0): ``(scale, zero_point)`` with
    ``x ~= (q - zero_point) * scale``, q in [0, 255]; zero is exact. A range of width 0 gets scale 1."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"activation range [{low}, {high}] is not finite")
    scale = (high - low) / 255.0
    if scale <= 0.0:
        return 1.0, 0
    zero_point = int(np.clip(round(-low / scale), 0, 255))
    return float(np.float32(scale)), zero_point
