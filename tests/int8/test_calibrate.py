"""compress.int8.calibrate: activation ranges and uint8 parameters, checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from compress.int8.calibrate import RangeCalibrator, entropy_window, uint8_params


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


def test_entropy_clips_a_long_tail_that_minmax_keeps():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.standard_normal(200_000), 0).astype(np.float32)
    relu[:3] = [40.0, 50.0, 60.0]                          # a few huge values widen the min-max step 15x
    low, high = _run(RangeCalibrator("entropy"), [{"x": relu}])["x"]
    assert low == 0.0 and 3.0 < high < 12.0                # clipped near the bulk (N(0,1) has 99.99% below 3.9)
    low, high = _run(RangeCalibrator("entropy"), [{"x": -relu}])["x"]
    assert high == 0.0 and -12.0 < low < -3.0              # the same on a negative tensor: the window shrinks to 0


def test_entropy_keeps_the_whole_range_of_a_uniform_tensor():
    x = {"x": np.linspace(-1.0, 3.0, 100_001)}             # no tail: clipping only adds error
    low, high = _run(RangeCalibrator("entropy"), [x])["x"]
    assert low == pytest.approx(-1.0, abs=0.02) and high == pytest.approx(3.0, abs=0.05)


def test_entropy_window_by_hand():
    # 2048 bins: a decaying bulk in the first 256, one count in the last. The whole range merges 8 bins per uint8
    # step, flattening the bulk (KL > 0); a window of the bulk's 256 bins keeps it at 1 bin per step and moves the
    # single outlier onto the edge bin: the smallest KL. Mirrored (zero at the top), the window mirrors too.
    hist = np.zeros(2048)
    hist[:256] = 1000.0 * np.exp(-np.arange(256) / 64.0)
    hist[-1] = 1.0
    assert entropy_window(hist, zero_bin=0.0, steps=255, stride=1) == (0, 256)
    assert entropy_window(hist[::-1].copy(), zero_bin=2048.0, steps=255, stride=1) == (1792, 2048)


def test_uint8_params_make_zero_exact_and_cover_the_range():
    scale, zero = uint8_params(-1.0, 3.0)
    assert scale == pytest.approx(4.0 / 255) and zero == round(1.0 / scale)
    assert (0 - zero) * scale == pytest.approx(-1.0, abs=scale) and (255 - zero) * scale == pytest.approx(3.0, abs=scale)
    assert uint8_params(0.0, 6.0) == (pytest.approx(6.0 / 255), 0)       # ReLU output: zero point 0
    assert uint8_params(0.0, 0.0) == (1.0, 0)


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown calibration method 'entropy2'"):
        RangeCalibrator("entropy2")


@pytest.mark.parametrize("percentile", [40, 50, 100.5])
def test_a_percentile_outside_50_to_100_is_refused(percentile):
    with pytest.raises(ValueError, match="percentile must be in"):
        RangeCalibrator("percentile", percentile=percentile)


@pytest.mark.parametrize("bins", [1, 2.5, True])
def test_fewer_than_two_or_non_integer_bins_are_refused(bins):
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        RangeCalibrator("percentile", bins=bins)


def test_entropy_needs_more_bins_than_uint8_steps():
    with pytest.raises(ValueError, match="more than 255 bins"):
        RangeCalibrator("entropy", bins=200)
    assert RangeCalibrator("entropy", bins=256).bins == 256


def test_ranges_before_any_tensor_is_refused():
    with pytest.raises(ValueError, match="no tensors"):
        RangeCalibrator().ranges()
    with pytest.raises(ValueError, match="no tensors"):
        RangeCalibrator().end_pass()


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_methods_refuse_ranges_without_the_second_pass(method):
    calib = RangeCalibrator(method)
    calib.observe({"x": np.ones(3)})
    calib.end_pass()
    assert calib.needs_second_pass
    with pytest.raises(ValueError, match=f"{method} calibration needs a second pass"):
        calib.ranges()


def test_a_tensor_new_in_the_second_pass_is_refused():
    calib = RangeCalibrator("percentile")
    calib.observe({"x": np.ones(3)})
    calib.end_pass()
    with pytest.raises(ValueError, match="'y' was not seen in the first"):
        calib.observe({"y": np.ones(3)})


def test_minmax_needs_one_pass_only():
    calib = RangeCalibrator("minmax")
    calib.observe({"x": np.array([-1.0, 2.0])})
    calib.end_pass()
    assert not calib.needs_second_pass and calib.ranges() == {"x": (-1.0, 2.0)}


@pytest.mark.parametrize("low, high", [(-np.inf, 1.0), (0.0, np.nan)])
def test_uint8_params_refuse_a_range_that_is_not_finite(low, high):
    with pytest.raises(ValueError, match="not finite"):
        uint8_params(low, high)
