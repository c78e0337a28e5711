"""compress.quant.calibrate: activation ranges and uint8 parameters, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from compress.quant.calibrate import RangeCalibrator, uint8_params


def _run(calib: RangeCalibrator, batches: list[dict]) -> dict:
    for b in batches:
        calib.observe(b)
    calib.end_pass()
    if calib.needs_second_pass:
        for b in batches:
            calib.observe(b)
    return calib.ranges()


def test_minmax_is_the_smallest_and_largest_value_and_contains_zero():
    batches = [{"a": np.array([1.0, 2.0]), "b": np.array([-3.0, -1.0])}, {"a": np.array([0.5, 7.0]), "b": np.array([-2.0])}]
    ranges = _run(RangeCalibrator("minmax"), batches)
    assert ranges == {"a": (0.0, 7.0), "b": (-3.0, 0.0)}   # widened to 0 on the side that lacks it


def test_percentile_clips_rare_outliers_and_minmax_does_not():
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, 100_000).astype(np.float32)
    values[:5] = [50.0, 60.0, -40.0, 45.0, 55.0]          # 5 outliers in 100,000: beyond the 99.99th percentile
    batches = [{"x": values[:50_000]}, {"x": values[50_000:]}]
    low, high = _run(RangeCalibrator("percentile", percentile=99.99), batches)["x"]
    assert -1.1 < low < -0.9 and 0.9 < high < 1.1
    assert _run(RangeCalibrator("minmax"), batches)["x"] == (-40.0, 60.0)


def test_percentile_100_is_minmax():
    x = {"x": np.linspace(-2, 3, 1001)}
    assert _run(RangeCalibrator("percentile", percentile=100.0), [x])["x"] == pytest.approx((-2.0, 3.0))


def test_uint8_params_make_zero_exact_and_cover_the_range():
    scale, zero = uint8_params(-1.0, 3.0)
    assert scale == pytest.approx(4.0 / 255) and zero == round(1.0 / scale)
    assert (0 - zero) * scale == pytest.approx(-1.0, abs=scale) and (255 - zero) * scale == pytest.approx(3.0, abs=scale)
    assert uint8_params(0.0, 6.0) == (pytest.approx(6.0 / 255), 0)       # ReLU output: zero point 0
    assert uint8_params(0.0, 0.0) == (1.0, 0)


def test_bad_settings_and_missing_passes_raise():
    with pytest.raises(ValueError, match="unknown calibration method 'entropy2'"):
        RangeCalibrator("entropy2")
    with pytest.raises(ValueError, match="percentile"):
        RangeCalibrator("percentile", percentile=40)
    with pytest.raises(ValueError, match="no tensors"):
        RangeCalibrator().ranges()
    calib = RangeCalibrator("percentile")
    calib.observe({"x": np.ones(3)})
    calib.end_pass()
    with pytest.raises(ValueError, match="second pass"):
        calib.ranges()
    with pytest.raises(ValueError, match="not seen in the first"):
        calib.observe({"y": np.ones(3)})
    with pytest.raises(ValueError, match="not finite"):
        uint8_params(-np.inf, 1.0)
