"""The search's rules on hand-made candidates: intervals, paired differences, the front, the winner."""

import math

import numpy as np
import pytest

from compress.search.candidates import Candidate, choose, nearest, paired_gap, pareto_front, sign_test, wilson
from compress.search.config import SearchConfig, parse_duration


def cand(id, acc_bits, size, ms=None, fits=True, test=None):
    bits = np.array(acc_bits, dtype=bool)
    c = Candidate(id, id, "int8+fold", "joint", size_bytes=size, latency_ms=ms, fits=fits, fits_bytes=fits,
                  val_acc=float(bits.mean()), val_n=len(bits), test_acc=test)
    c.val_low, c.val_high = wilson(float(bits.mean()), len(bits))
    c.set_correct(bits)
    return c


def test_wilson_matches_the_formula_and_stays_in_bounds():
    low, high = wilson(0.9, 100)
    assert low == pytest.approx(0.8256, abs=1e-4) and high == pytest.approx(0.9448, abs=1e-4)
    assert wilson(0.0, 10)[0] == 0.0 and wilson(1.0, 10)[1] == 1.0


def test_correct_bits_round_trip():
    bits = np.random.default_rng(0).random(401) > 0.3
    c = cand("a", bits, 1)
    assert (c.correct() == bits).all() and Candidate.from_dict(c.to_dict()).correct().tolist() == bits.tolist()


def test_paired_gap_counts_only_discordant_images():
    a = np.array([1, 1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 0, 1, 1], dtype=bool)
    gap, se = paired_gap(a, b)
    assert gap == pytest.approx(0.0) and se == pytest.approx(math.sqrt(2) / 6)
    with pytest.raises(ValueError, match="same"):
        paired_gap(a, b[:3])


def test_a_few_images_do_not_win_the_faster_model_does():
    n = 400
    base = np.ones(n, dtype=bool)
    base[:40] = False                          # 90.0%
    better = base.copy()
    better[:4] = True                          # 91.0%: 4 images more, inside the noise
    slow = cand("slow-more-accurate", better, 1000, ms=2.0)
    fast = cand("fast", base, 1000, ms=1.0)
    winner, tied = choose([slow, fast], tolerance_points=1.0)
    assert winner is fast and {c.id for c in tied} == {"slow-more-accurate", "fast"}
    winner, tied = choose([slow, fast], tolerance_points=0.5)    # at most half a point
    assert winner is slow and tied == [slow]


@pytest.mark.parametrize("wins,losses,p", [(4, 0, 0.125), (20, 8, 0.0357), (0, 0, 1.0), (5, 5, 1.0)])
def test_sign_test_exact_values(wins, losses, p):
    assert sign_test(wins, losses) == pytest.approx(p, abs=5e-4)


def test_latencies_within_ten_percent_are_equally_fast_and_the_smaller_file_wins():
    bits = np.ones(50, dtype=bool)
    rows = [cand("big", bits, 2000, ms=1.00), cand("small", bits, 1000, ms=1.05), cand("slow", bits, 10, ms=2.0)]
    assert choose(rows)[0].id == "small"


def test_a_real_difference_wins_whatever_its_speed():
    n = 400
    base = np.ones(n, dtype=bool)
    base[:80] = False                          # 80%
    much = np.ones(n, dtype=bool)
    much[:20] = False                          # 95%
    winner, tied = choose([cand("fast", base, 10, ms=0.1), cand("slow", much, 10, ms=5.0)], tolerance_points=50)
    assert winner.id == "slow" and [c.id for c in tied] == ["slow"]


def test_the_test_split_never_changes_the_choice():
    bits = np.ones(100, dtype=bool)
    rows = [cand("a", bits, 10, ms=1.0, test=0.1), cand("b", bits, 10, ms=2.0, test=0.99)]
    assert choose(rows)[0].id == "a"
    for r in rows:
        r.test_acc = 1 - r.test_acc
    assert choose(rows)[0].id == "a"


def test_nothing_fits_gives_no_winner_and_the_nearest():
    rows = [cand("a", [1, 1], 300, fits=False), cand("b", [1, 0], 120, fits=False), cand("c", [1, 1], 150,
                                                                                          fits=False)]
    assert choose(rows) == (None, [])
    assert [c.id for c in nearest(rows, 100, None, k=2)] == ["b", "c"]


def test_pareto_front_by_hand():
    a = cand("a", [1, 1, 1, 1], 100, ms=1.0)    # best accuracy, big
    b = cand("b", [1, 1, 1, 0], 50, ms=1.0)     # smaller
    c = cand("c", [1, 1, 0, 0], 60, ms=2.0)     # dominated by b
    d = cand("d", [1, 0, 0, 0], 40, ms=0.5)     # smallest and fastest
    assert {x.id for x in pareto_front([a, b, c, d])} == {"a", "b", "d"}
    assert {x.id for x in pareto_front([a, b, c, d], axes=("size_bytes",))} == {"a", "b", "d"}
    c.latency_ms = None
    assert c not in pareto_front([a, b, c, d])


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("90s", 90), ("1.5h", 5400), ("45", 45), (12, 12)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-3m", "5y", "m", "inf", True])
def test_bad_durations_name_the_text(text):
    with pytest.raises(ValueError, match="time budget"):
        parse_duration(text)


@pytest.mark.parametrize("kw,match", [
    ({"importances": ("random",)}, "control"), ({"scopes": ("local",)}, "scope"), ({"codecs": ("int1",)}, "int1"),
    ({"storage": "int8"}, "list"), ({"finetune_epochs": 0}, "finetune_epochs"), ({"runtimes": ()}, "runtimes"),
    ({"format": "zip"}, "format"), ({"time_budget_s": "soon"}, "time budget"), ({"deep_headroom": 0.5}, "headroom"),
])
def test_bad_settings_name_the_field(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SearchConfig(**kw)


def test_by_default_only_an_equal_accuracy_ties():
    a = np.ones(400, dtype=bool)
    b = a.copy()
    b[0] = False
    assert choose([cand("fast", b, 10, ms=0.1), cand("slow", a, 10, ms=9.0)])[0].id == "slow"
    assert choose([cand("fast", a, 10, ms=0.1), cand("slow", a, 10, ms=9.0)])[0].id == "fast"


def test_settings_round_trip_and_refuse_unknown_keys():
    c = SearchConfig(importances=("l1",), time_budget_s="2m")
    assert c.time_budget_s == 120 and SearchConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        SearchConfig.from_dict({"importance": ["l1"]})
    assert "time_budget_s" not in c.settings()


def test_deep_epochs_follow_the_run_unless_set():
    assert SearchConfig().deep_epochs(8) == (12.0, 6.0)
    assert SearchConfig().deep_epochs(2) == (6.0, 3.0)          # DeepConfig's own at least
    assert SearchConfig(deep_prune_epochs=1, deep_finetune_epochs=0).deep_epochs(30) == (1.0, 0.0)
