"""Activation ranges for int8 execution, from tensors seen on calibration images; pure numpy.

Methods (Krishnamoorthi 2018, "Quantizing deep convolutional networks for efficient inference", sec. 3;
Wu et al. 2020, "Integer quantization for deep learning inference", sec. 4.1):
    minmax      the smallest and largest value seen. Nothing clips; one outlier widens the step for all values.
    percentile  the ``percentile`` and ``100 - percentile`` points of all values seen (99.99 by default), read
                from a histogram of ``bins`` equal bins between the min and max of a first pass. Clips the
                rarest outliers for a finer step.

A range always contains 0 (zero must be exact: padding and ReLU produce it). :func:`uint8_params` turns a range
into the asymmetric uint8 ``(scale, zero_point)`` that ONNX ``QuantizeLinear`` takes.

    calib = RangeCalibrator("percentile")
    for batch in batches: calib.observe(tensors_of(batch))       # pass 1: min and max
    calib.end_pass()
    if calib.needs_second_pass:
        for batch in batches: calib.observe(tensors_of(batch))   # pass 2: histograms
    ranges = calib.ranges()                                      # {name: (low, high)}
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["CALIBRATION_METHODS", "RangeCalibrator", "uint8_params"]

CALIBRATION_METHODS = ("minmax", "percentile")


class RangeCalibrator:
    """Collects per-tensor statistics over calibration batches and gives each tensor's ``(low, high)`` range.

    ``method``: ``minmax`` or ``percentile``; ``percentile`` (in percent, 50 < p <= 100) and ``bins`` (count)
    only matter for the percentile method, which needs a second pass over the same batches. Raises
    ValueError for an unknown method or out-of-range settings.
    """

    def __init__(self, method: str = "minmax", *, percentile: float = 99.99, bins: int = 2048):
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
        if not 50.0 < float(percentile) <= 100.0:
            raise ValueError(f"calibration percentile must be in (50, 100], got {percentile!r}")
        if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
            raise ValueError(f"calibration bins must be an integer >= 2, got {bins!r}")
        self.method, self.percentile, self.bins = method, float(percentile), bins
        self._min: dict[str, float] = {}
        self._max: dict[str, float] = {}
        self._hist: dict[str, np.ndarray] = {}
        self._frozen = False    # True once the first pass is over (histogram edges are fixed)

    @property
    def needs_second_pass(self) -> bool:
        """After the first pass: whether :meth:`observe` must see the batches again (percentile: histograms)."""
        return self.method == "percentile" and not self._hist

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
        if self.method == "percentile" and not self._hist:
            raise ValueError("percentile calibration needs a second pass over the batches (see needs_second_pass)")
        out = {}
        for name in self._min:
            lo, hi = (self._min[name], self._max[name]) if self.method == "minmax" else self._percentile_range(name)
            out[name] = (min(lo, 0.0), max(hi, 0.0))
        return out

    def _edges(self, name: str) -> tuple[float, float]:
        lo, hi = self._min[name], self._max[name]
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def _percentile_range(self, name: str) -> tuple[float, float]:
        hist = self._hist.get(name)
        if hist is None or hist.sum() == 0:
            return self._min[name], self._max[name]
        lo_edge, hi_edge = self._edges(name)
        edges = np.linspace(lo_edge, hi_edge, self.bins + 1)
        cdf = np.cumsum(hist) / hist.sum()
        tail = 1.0 - self.percentile / 100.0
        # the lowest bin whose cumulative share reaches the tail, read at its lower edge (and symmetrically above)
        low = edges[int(np.searchsorted(cdf, tail, side="left"))] if tail > 0 else lo_edge
        high = edges[int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1] if tail > 0 else hi_edge
        return max(float(low), self._min[name]), min(float(high), self._max[name])


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
