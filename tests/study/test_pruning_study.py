"""compress sweep --methods scale,prune,prune-scratch: the Liu et al. 2019 comparison, resumable, in the report."""

from __future__ import annotations

import json

import pytest

from compress.cli import main
from compress.study import SweepConfig
from compress.study.pruning import load_pruning, run_pruning_study
from compress.study.pruning_report import summarize_pruning

DATA = "synthetic:n=120,classes=3,size=8"


def _config(**kw) -> SweepConfig:
    return SweepConfig(**{"data": DATA, "families": ("mlp",), "budgets": (300, 900), "seeds": 2, "epochs": 2,
                          "latency": False, "batch_size": 32, **kw})


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("pstudy") / "sweep"
    lines: list[str] = []
    doc = run_pruning_study(_config(), out, progress=lines.append)
    return out, doc, lines


def test_every_method_budget_and_seed_is_recorded(study):
    out, doc, _ = study
    keys = {(r["method"], r["budget"], r["seed"]) for r in doc["records"]}
    assert keys == {(m, b, s) for m in ("scale", "prune", "prune-scratch") for b in (300, 900) for s in (0, 1)}
    by = {(r["method"], r["budget"], r["seed"]): r for r in doc["records"]}
    for b in (300, 900):
        for s in (0, 1):
            pruned, scratch = by[("prune", b, s)], by[("prune-scratch", b, s)]
            assert pruned["param_count"] <= b and pruned["param_count"] == scratch["param_count"]
            assert pruned["source_param_count"] > 900                     # pruned from a larger model
            assert (pruned["epochs"], scratch["epochs"]) == (1, 2)        # same total epochs: 1 + 1 and 2
    source = json.loads((out / "pruning" / "sources" / "mlp-s0" / "config.json").read_text())
    assert source["train"]["epochs"] == 1
    assert load_pruning(out)["records"] == doc["records"]


def test_rerun_resumes_without_training(study):
    out, doc, _ = study
    lines: list[str] = []
    again = run_pruning_study(_config(), out, progress=lines.append)
    assert again["records"] == doc["records"] and not any("params (from" in line for line in lines)


def test_report_has_the_section_and_figure(study, tmp_path):
    out, doc, _ = study
    rows = summarize_pruning(doc)
    assert {r["method"] for r in rows} == {"scale", "prune", "prune-scratch"} and all(r["n"] == 2 for r in rows)
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "Liu et al. 2019" in text and "prune-scratch vs prune" in text
    assert (tmp_path / "rep" / "pruning_vs_params.png").stat().st_size > 0


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="methods must be among"):
        run_pruning_study(_config(), tmp_path / "a", methods=("scale", "distill"))
    with pytest.raises(ValueError, match="epochs >= 2"):
        run_pruning_study(_config(epochs=1), tmp_path / "b")
    assert main(["sweep", "--data", DATA, "--methods", "scale,bogus", "--out", str(tmp_path / "c")]) == 2
