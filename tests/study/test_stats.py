import math

import pytest

from compress.study.stats import MIN_DIFFERENCE, Interval, mean_ci, t_quantile_975, verdict, wilson


def test_mean_ci_by_hand():
    iv = mean_ci([0.80, 0.82, 0.84])
    # mean 0.82, s = 0.02, t(0.975, 2) = 4.303 -> half width 4.303 * 0.02 / sqrt(3)
    assert iv.mean == pytest.approx(0.82)
    assert iv.std == pytest.approx(0.02)
    assert iv.half_width == pytest.approx(4.303 * 0.02 / math.sqrt(3))
    assert iv.method == "t" and iv.n == 3


def test_one_seed_falls_back_to_wilson():
    iv = mean_ci([0.66], n_eval=3589)
    low, high = wilson(0.66, 3589)
    assert (iv.low, iv.high) == (low, high) and iv.method == "wilson"
    # REFERENCES: ~0.8 points standard error at 66% on 3,589 images -> ~1.55 points half width
    assert 0.014 < iv.half_width < 0.017
    assert mean_ci([0.5]).method == "none"


def test_t_quantiles():
    assert t_quantile_975(1) == 12.706 and t_quantile_975(30) == 2.042 and t_quantile_975(200) == 1.96
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_tie_rule():
    a = Interval(0.80, 0.78, 0.82, 3, 0.01, "t")
    b = Interval(0.81, 0.79, 0.83, 3, 0.01, "t")
    c = Interval(0.90, 0.89, 0.91, 3, 0.01, "t")
    assert verdict(a, b) == "tie" and verdict(c, a) == "a" and verdict(a, c) == "b"


def test_tie_rule_needs_a_minimum_difference():
    # narrow seed intervals that do not overlap, but 0.8 points apart: inside the test set's own noise
    a = Interval(0.970, 0.968, 0.972, 5, 0.002, "t")
    b = Interval(0.962, 0.960, 0.964, 5, 0.002, "t")
    assert MIN_DIFFERENCE == 0.01 and verdict(a, b) == "tie"
    assert verdict(a, b, min_difference=0.005) == "a" and verdict(b, a, min_difference=0) == "b"
    far = Interval(0.950, 0.948, 0.952, 5, 0.002, "t")
    assert verdict(a, far) == "a" and verdict(far, a) == "b"
    for bad in (-0.01, float("nan")):
        with pytest.raises(ValueError, match="min_difference"):
            verdict(a, b, min_difference=bad)


@pytest.mark.parametrize("bad", [[], [float("nan")], [0.5, float("inf")]])
def test_mean_ci_bad_input(bad):
    with pytest.raises(ValueError):
        mean_ci(bad)
