"""compress.evidence against values computed by hand: intervals, McNemar's exact test, the paired rule, and how
small a difference a split resolves."""

import math
import warnings

import numpy as np
import pytest
import torch

from compress import evidence as E


def pair(only_a: int, only_b: int, same: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two correctness vectors: ``only_a`` images a alone gets right, ``only_b`` b alone, ``same`` both."""
    a = np.array([1] * only_a + [0] * only_b + [1] * same, dtype=bool)
    b = np.array([0] * only_a + [1] * only_b + [1] * same, dtype=bool)
    return a, b


def test_wilson_by_hand():
    # p = 0.9, n = 100: centre (0.9 + 1.96^2/200) / (1 + 1.96^2/100) = 0.88518, half 0.05957
    low, high = E.wilson(0.9, 100)
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)
    assert E.wilson(0.0, 10)[0] == 0.0 and E.wilson(1.0, 10)[1] == 1.0
    with pytest.raises(ValueError, match="n must be positive"):
        E.wilson(0.5, 0)


def test_one_wilson():
    from compress.search import candidates
    from compress.study import stats

    assert stats.wilson is E.wilson and candidates.wilson is E.wilson


@pytest.mark.parametrize("wins, losses, p", [(6, 0, 2 / 64), (5, 0, 2 / 32), (4, 0, 0.125), (0, 0, 1.0),
                                             (9, 1, 2 * 11 / 1024), (20, 8, 0.0357)])
def test_sign_test_by_hand(wins, losses, p):
    assert E.sign_test(wins, losses) == pytest.approx(p, abs=5e-4)
    assert E.sign_test(losses, wins) == pytest.approx(p, abs=5e-4)


def test_correct_from_labels_or_logits():
    y = torch.tensor([0, 1, 2, 1])
    assert E.correct(torch.tensor([0, 1, 1, 1]), y).tolist() == [True, True, False, True]
    logits = torch.tensor([[2.0, 0, 0], [0, 0, 1], [0, 0, 3], [0, 5, 0]])
    assert E.correct(logits, y).tolist() == [True, False, True, True]
    with pytest.raises(ValueError, match="3 predictions for 4 labels"):
        E.correct([0, 1, 2], y)


def test_gap_interval_by_hand():
    # 6 images to 0 on 70: the share's Clopper-Pearson lower bound solves theta^6 = 0.025 -> 0.54074
    a, b = pair(6, 0, same=64)
    gap = E.gap_interval(a, b)
    assert (gap.only_a, gap.only_b, gap.n) == (6, 0, 70) and gap.diff == pytest.approx(6 / 70)
    assert gap.low == pytest.approx(6 / 70 * (2 * 0.025 ** (1 / 6) - 1), rel=1e-9)
    assert gap.high == pytest.approx(6 / 70)
    assert gap.points() == "+8.57 [+0.70, +8.57]"
    flipped = E.gap_interval(b, a)
    assert (flipped.low, flipped.high) == pytest.approx((-gap.high, -gap.low))
    same = E.gap_interval(*pair(0, 0, same=10))
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same"):
        E.gap_interval(a, b[:3])


def test_better_is_mcnemar_at_zero_points_and_the_interval_above():
    for d in range(0, 40):
        for k in range(d + 1):
            a, b = pair(k, d - k, same=5)
            expected = k > d - k and E.sign_test(k, d - k) < 0.05
            assert E.better(a, b) == expected == (E.gap_interval(a, b).low > 0), (k, d - k)
    a, b = pair(6, 0, same=64)      # +8.57 points, interval [+0.70, +8.57]
    assert E.better(a, b, 0.5) and not E.better(a, b, 1.0)
    assert not E.better(*pair(4, 0, same=66))   # the "+5.71 points" on 70 images: 4 images, a tie
    with pytest.raises(ValueError, match="points"):
        E.better(a, b, -1)


def test_within():
    a, b = pair(0, 4, same=66)     # a is 4 images (5.71 points) behind: not resolved, so within any tolerance
    assert E.within(a, b, 0.0) and E.within(a, b, 0.5)
    a, b = pair(0, 20, same=66)    # 20 images behind on 86: interval [-23.3, -15.4] points
    assert not E.within(a, b, 0.0) and not E.within(a, b, 10.0) and E.within(a, b, 20.0)


def test_first_unbeaten_prefers_the_earlier_unless_resolved():
    base = np.array([1] * 60 + [0] * 40, dtype=bool)
    few = base.copy()
    few[60:64] = True            # 4 images better: a tie
    many = base.copy()
    many[60:90] = True           # 30 better
    assert E.first_unbeaten([base, few]) == 0
    assert E.first_unbeaten([base, few, many]) == 2
    assert E.first_unbeaten([base, many], points=40.0) == 0   # 30 points ahead is within a 40-point tolerance
    assert E.first_unbeaten([many, base]) == 0
    with pytest.raises(ValueError):
        E.first_unbeaten([])


def test_what_a_split_resolves():
    assert E.MIN_DISCORDANT == 6                    # 2 / 2**6 = 0.031 < 0.05 <= 2 / 2**5
    assert E.resolvable_points(70) == pytest.approx(600 / 70)
    assert E.resolvable_points(1200) == pytest.approx(0.5)
    assert E.images_needed(0.5) == 1200 and E.images_needed(1.0) == 600 and E.images_needed(0.7) == 858
    assert E.images_needed(3.0) == 200
    for bad in (0, -1, math.inf):
        with pytest.raises(ValueError):
            E.images_needed(bad)
    with pytest.raises(ValueError):
        E.resolvable_points(0)


def test_split_warning_line():
    assert E.split_warning(70, 0.5) == ("validation split of 70 images cannot resolve a 0.5-point tolerance (a "
                                        "difference needs >= 8.6 points here; about 1,200 images would resolve 0.5)")
    assert E.split_warning(1200, 0.5) is None and E.split_warning(70, 0.0) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert E.warn_unresolvable(400, 1.0).startswith("validation split of 400 images")
        assert E.warn_unresolvable(400, 0.0) is None
    assert [w.category for w in caught] == [E.SplitTooSmallWarning]
