"""Reports flag weak evidence in their summary, one line per kind: fewer than 3 seeds, zero-width intervals,
points where most runs did not converge, verdicts at the edge of the tie rule."""

import json

from compress.study.evidence_flags import Compared, at_edge, weak_evidence
from compress.study.report import write_report
from compress.study.results import SWEEP_FORMAT, summarize
from compress.study.stats import Interval


def iv(mean, half):
    return Interval(mean, mean - half, mean + half, 5, 0.01, "t")


def test_at_edge_near_either_limit_of_the_rule():
    # a win by 1.1 points whose intervals are 0.2 apart (the default study's CNN over MobileNetV1 at 5k)
    assert at_edge(Compared("x", iv(0.946, 0.0045), iv(0.935, 0.0045), "a"))
    # a clear win: 5 points, intervals 3 points apart
    assert not at_edge(Compared("x", iv(0.95, 0.01), iv(0.90, 0.01), "a"))
    # a tie whose intervals overlap by 0.01 points and whose gap is 2 points (CNN vs MLP at 80k)
    assert at_edge(Compared("x", iv(0.978, 0.0070), iv(0.957, 0.0141), "tie"))
    # a tie far inside the rule: overlapping by 2 points
    assert not at_edge(Compared("x", iv(0.95, 0.02), iv(0.94, 0.02), "tie"))
    # a tie by a gap of 0.8 points with intervals well apart: 0.2 under the minimum, so at the edge
    assert at_edge(Compared("x", iv(0.950, 0.001), iv(0.942, 0.001), "tie"))
    assert not at_edge(Compared("x", iv(0.950, 0.001), iv(0.945, 0.001), "tie"))


def record(family, budget, seed, acc, converged=True):
    return dict(run_id=f"{family}-{budget}-width-full-s{seed}", family=family, budget=budget, policy="width",
                variant="full", seed=seed, width_mult=0.5, param_count=budget, macs=budget * 10,
                bytes_fp32=budget * 4, bytes_fp16=budget * 2, bytes_int8=budget, val_acc=acc, test_acc=acc,
                best_epoch=3, epochs=3, converged=converged, train_seconds=1.0, latency_ms=None, n_val=70,
                n_test=0, run_dir=f"runs/{family}-{budget}-width-full-s{seed}")


def sweep(tmp_path, recs, seeds):
    config = dict(data="default", families=["a", "b"], budgets=[10_000], seeds=seeds, epochs=3, batch_size=64,
                  lr=0.01, ablate=[], ablate_family="a", ablate_budget=None, policies=["width"], train={})
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "results.json").write_text(json.dumps({"format": SWEEP_FORMAT, "config": config, "records": recs,
                                                       "skipped": []}))
    return tmp_path


def test_the_issue_case_two_seeds_zero_width_none_converged(tmp_path):
    # issue 25: with 2 seeds "48.6 [48.6, 48.6]" and "[0.0, 87.3]"; 0 of the runs converged
    recs = [record("a", 10_000, s, 0.486, converged=False) for s in range(2)]
    recs += [record("b", 10_000, s, acc, converged=False) for s, acc in enumerate([0.30, 0.57])]
    text = write_report(sweep(tmp_path / "s", recs, 2), tmp_path / "r").read_text()
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in summary.splitlines() if line.startswith("- ")]
    assert len(lines) == 3
    assert lines[0].startswith("- **fewer than 3 seeds**") and "a 10,000 width (2), b 10,000 width (2)" in lines[0]
    assert lines[1].startswith("- **zero-width intervals**") and lines[1].endswith(": a 10,000 width")
    assert lines[2].startswith("- **most runs did not converge**") and "b 10,000 width (2 of 2)" in lines[2]


def test_solid_evidence_says_nothing_flagged(tmp_path):
    recs = [record(f, 10_000, s, acc + 0.002 * s) for f, acc in (("a", 0.95), ("b", 0.80)) for s in range(4)]
    rows = summarize({"records": recs})
    assert weak_evidence(rows, []) == []
    text = write_report(sweep(tmp_path / "s", recs, 4), tmp_path / "r").read_text()
    assert "- weak evidence: none flagged" in text


def test_unmeasured_convergence_is_not_flagged():
    recs = [record("a", 10_000, s, 0.9 + 0.01 * s, converged=None) for s in range(3)]
    assert weak_evidence(summarize({"records": recs}), []) == []
