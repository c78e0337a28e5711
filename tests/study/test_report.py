"""compress.report and the sweep figures, from a results file alone (no runs, nothing retrained)."""

import json

import pytest

from compress.study import plots
from compress.study.report import compare_families, crossings, write_report
from compress.study.results import SWEEP_FORMAT, summarize


def record(family, budget, seed, acc, variant="full"):
    return dict(run_id=f"{family}-{budget}-{variant}-s{seed}", family=family, budget=budget, variant=variant,
                seed=seed, width_mult=0.5, param_count=int(budget * 0.97), macs=budget * 10, bytes_fp32=budget * 4,
                bytes_fp16=budget * 2, bytes_int8=budget, val_acc=acc, test_acc=acc, best_epoch=3, epochs=3,
                train_seconds=1.0, latency_ms=0.1 + budget / 1e6, n_val=400, n_test=1000,
                run_dir=f"runs/{family}-{budget}-{variant}-s{seed}")


def results_file(tmp_path):
    # a crosses b between 10k and 100k: a ahead by ~10 points below, behind by ~10 above (tight seeds)
    accs = {("a", 10_000): [0.80, 0.81, 0.82], ("b", 10_000): [0.70, 0.71, 0.72],
            ("a", 100_000): [0.85, 0.86, 0.87], ("b", 100_000): [0.95, 0.96, 0.97]}
    recs = [record(f, b, s, acc) for (f, b), vals in accs.items() for s, acc in enumerate(vals)]
    recs += [record("a", 100_000, s, acc, "no_augment") for s, acc in enumerate([0.84, 0.86, 0.88])]
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = dict(data="default", families=["a", "b"], budgets=[10_000, 100_000], seeds=3, epochs=3,
                  batch_size=64, lr=0.01, ablate=["augment"], ablate_family="a", ablate_budget=None, train={})
    (tmp_path / "results.json").write_text(json.dumps({"format": SWEEP_FORMAT, "config": config, "records": recs,
                                                       "skipped": []}))
    return tmp_path


def test_compare_and_crossing(tmp_path):
    rows = summarize(json.loads((results_file(tmp_path) / "results.json").read_text()))
    comp = compare_families(rows, "a", "b")
    assert [c["verdict"] for c in comp] == ["a", "b"]
    assert comp[0]["diff"] == pytest.approx(0.10)
    (note,) = crossings(comp)
    assert "cross between the 10,000 and 100,000 budgets" in note and "noise" not in note


def test_report_from_results_file_alone(tmp_path):
    sweep_dir = results_file(tmp_path / "sweep")
    readme = write_report(sweep_dir, tmp_path / "report")
    text = readme.read_text()
    assert "a beats b by 10.0 points" in text and "b beats a by 10.0 points" in text
    assert "no_augment" in text and "tie" in text            # ablation: 0.86 vs 0.86
    for fig in ("accuracy_vs_params.png", "accuracy_vs_bytes.png", "accuracy_vs_macs.png", "latency_vs_macs.png"):
        assert (tmp_path / "report" / fig).stat().st_size > 1000
    assert "Training curves" not in text                      # no run folders: no curves, no error


def test_report_refuses_missing_or_empty_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="no sweep results"):
        write_report(tmp_path, tmp_path / "r")
    (tmp_path / "results.json").write_text(json.dumps({"format": SWEEP_FORMAT, "config": {}, "records": []}))
    with pytest.raises(ValueError, match="no finished runs"):
        write_report(tmp_path, tmp_path / "r")
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a results file"):
        write_report(tmp_path, tmp_path / "r")


def test_pareto_front():
    pts = [(10, 0.5), (20, 0.4), (30, 0.9), (5, 0.3), (30, 0.8)]
    assert plots.pareto_front(pts) == [(5, 0.3), (10, 0.5), (30, 0.9)]


def test_accuracy_plot_needs_data(tmp_path):
    with pytest.raises(ValueError, match="no results"):
        plots.accuracy_vs([], tmp_path / "x.png")


def test_families_compared_at_their_best_policy(tmp_path):
    from compress.study.results import best_policies

    def rec(family, budget, policy, seed, acc):
        r = record(family, budget, seed, acc)
        r.update(policy=policy, run_id=f"{family}-{budget}-{policy}-full-s{seed}", depth_mult=0.5, input_size=28,
                 converged=seed != 2)
        return r

    accs = {("a", "width"): 0.70, ("a", "compound"): 0.90, ("b", "width"): 0.80, ("b", "compound"): 0.75}
    recs = [rec(f, b, p, s, acc + 0.01 * s) for (f, p), acc in accs.items() for b in (10_000, 100_000)
            for s in range(3)]
    config = dict(data="default", families=["a", "b"], budgets=[10_000, 100_000], policies=["width", "compound"],
                  seeds=3, epochs=20, patience=3, batch_size=64, lr=0.01, ablate=[], ablate_family="a",
                  ablate_budget=None, train={})
    (tmp_path / "results.json").write_text(json.dumps({"format": SWEEP_FORMAT, "config": config, "records": recs,
                                                       "skipped": []}))
    assert best_policies(summarize(json.loads((tmp_path / "results.json").read_text()))) == {
        "a": "compound", "b": "width"}
    text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "a beats b by 10.0 points" in text                     # a at compound (0.91) vs b at width (0.81)
    assert "## Scaling policies (ablation)" in text and "best policy for a: `compound`" in text
    assert "| 2/3 |" in text and "early stopping after 3 epochs" in text
