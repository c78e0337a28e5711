"""Intervals to a target: `--target-halfwidth P` / `--max-seeds N` add seeds (stacked, in rounds) to the points
whose 95% interval is wider than +-P points; the report lists what did not reach it."""

import json

import pytest

from compress.study import SweepConfig, run_sweep, summarize, write_report
from compress.study.points import seeds_for_target
from compress.study.stats import t_quantile_975

DATA = "synthetic:n=240,classes=3,size=12"


def tiny(**kw):
    base = dict(data=DATA, families=("mlp",), budgets=(5_000,), policies=("width",), resolution=1.0, seeds=2,
                epochs=1, patience=None, batch_size=32, latency=False)
    return SweepConfig(**{**base, **kw})


class Recording:
    def __init__(self):
        self.calls = []

    def run(self, fn, tasks):
        for task in tasks:
            self.calls.append((task.task_id, task.seeds))
            yield fn(task)


def test_seeds_for_target_is_the_smallest_count_whose_interval_fits():
    # the default study's widest row: +-6.9 points over 5 seeds (std 5.56 points)
    m = seeds_for_target(0.0556, 5, target=0.03, cap=20)
    fits = lambda n: t_quantile_975(n - 1) * 0.0556 / n ** 0.5 <= 0.03   # noqa: E731
    assert fits(m) and not fits(m - 1)
    assert seeds_for_target(0.0556, 5, target=0.001, cap=20) == 20        # never past the cap
    assert seeds_for_target(0.0, 1, target=0.03, cap=20) == 3             # no spread measured: at least 3


def test_wide_points_get_more_seeds_up_to_the_cap_and_the_report_lists_them(tmp_path):
    ex = Recording()
    said = []
    config = tiny(target_halfwidth=0.01, max_seeds=5)   # unreachable on 240 synthetic images
    results = run_sweep(config, tmp_path / "s", executor=ex, progress=said.append)
    assert ex.calls == [("mlp-5000-width-full", (0, 1)), ("mlp-5000-width-full", (2, 3, 4))]
    assert sorted(r["run_id"] for r in results["records"]) == [f"mlp-5000-width-full-s{s}" for s in range(5)]
    assert any(line.startswith("round 1 of the interval target +-0.01 points: 3 more seeds") for line in said)
    assert "not reached with 5 seeds: mlp-5000-width-full" in said[-1]
    (row,) = summarize(results)
    assert row["n"] == 5 and row["seeds"] == [0, 1, 2, 3, 4]
    # a rerun keeps the added seeds and trains nothing
    ex = Recording()
    assert len(run_sweep(config, tmp_path / "s", executor=ex, progress=None)["records"]) == 5 and ex.calls == []
    text = (write_report(tmp_path / "s", tmp_path / "r")).read_text()
    assert "interval target +-0.01 points (5 seeds per point: more seeds for mlp 5,000 width (5))" in text
    assert "**not reached** by 1 point(s): mlp 5,000 width (+-" in text and "with 5 seeds)" in text


def test_points_within_the_target_keep_their_seeds(tmp_path):
    ex = Recording()
    results = run_sweep(tiny(target_halfwidth=100.0), tmp_path, executor=ex, progress=None)
    assert ex.calls == [("mlp-5000-width-full", (0, 1))] and len(results["records"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--target-halfwidth", "0"], "target_halfwidth must be a positive number"),
    (["--target-halfwidth", "-2"], "target_halfwidth must be a positive number"),
    (["--seeds", "3", "--max-seeds", "2", "--target-halfwidth", "3"], "max_seeds must be an int >= seeds (3)"),
])
def test_bad_target_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    from compress.cli import main

    out = tmp_path / "sw"
    assert main(["sweep", "--data", DATA, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["study", "--data", DATA, *args, "--out", str(out), "--report", str(tmp_path / "rep")]) == 2
    assert not out.exists() and not (tmp_path / "rep").exists()


def test_the_study_aims_at_3_points_a_plain_sweep_keeps_its_seeds():
    from compress.cli import build_parser
    from compress.cli.sweep import config_from_args
    from compress.study.pipeline import STUDY_ABLATIONS, STUDY_TARGET

    parser = build_parser()
    study = config_from_args(parser.parse_args(["study"]), ablate_default=STUDY_ABLATIONS, target_default=STUDY_TARGET)
    assert (study.target_halfwidth, study.max_seeds, study.seed_cap) == (3.0, 20, 20)
    sweep = config_from_args(parser.parse_args(["sweep"]))
    assert sweep.target_halfwidth is None and sweep.seed_cap == sweep.seeds
    tuned = config_from_args(parser.parse_args(["study", "--target-halfwidth", "2", "--max-seeds", "8"]),
                             ablate_default=STUDY_ABLATIONS, target_default=STUDY_TARGET)
    assert (tuned.target_halfwidth, tuned.max_seeds) == (2.0, 8)
    assert SweepConfig(target_halfwidth=2.0).seed_cap == 4 * SweepConfig.seeds
