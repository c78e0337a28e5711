"""compress sweep --methods scale,prune,prune-scratch: the Liu et al. 2019 comparison through the sweep's
executors, resumable, in the report."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from compress.cli import main
from compress.study import SweepConfig
from compress.study.pruning import load_pruning, run_pruning_study
from compress.study.pruning_report import summarize_pruning

DATA = "synthetic:n=120,classes=3,size=8"
ARGS = ["--data", DATA, "--families", "mlp", "--budgets", "300,900", "--seeds", "2", "--epochs", "2",
        "--policies", "width", "--no-latency", "--batch-size", "32"]
VOLATILE = ("train_seconds",)


def _config(**kw) -> SweepConfig:
    return SweepConfig(**{"data": DATA, "families": ("mlp",), "budgets": (300, 900), "seeds": 2, "epochs": 2,
                          "policies": ("width",), "latency": False, "batch_size": 32, **kw})


def _figures(doc: dict) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in doc["records"] + doc["sources"]]


class Interrupting:
    """Runs tasks in this process, counting them over every ``run`` call; Ctrl-C before task ``limit``."""

    def __init__(self, limit=None):
        self.limit, self.tasks = limit, []

    def run(self, fn, tasks):
        for task in tasks:
            if len(self.tasks) == self.limit:
                raise KeyboardInterrupt
            self.tasks.append(task.task_id)
            yield fn(task)


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
            # the same total epochs: source 1 + fine-tune 1, against 2 from scratch
            assert (pruned["source_epochs"], pruned["max_epochs"], scratch["max_epochs"]) == (1, 1, 2)
            assert by[("scale", b, s)]["max_epochs"] == 2
            assert (out / pruned["run_dir"] / "checkpoint.pt").exists()
    assert [(r["family"], r["seed"], r["epochs"]) for r in doc["sources"]] == [("mlp", 0, 1), ("mlp", 1, 1)]
    source = json.loads((out / "pruning" / "runs" / "mlp-source-s0" / "config.json").read_text())
    assert source["train"]["epochs"] == 1
    assert load_pruning(out)["records"] == doc["records"] and doc["failed"] == doc["skipped"] == []


def test_rerun_resumes_without_training(study):
    out, doc, _ = study
    ex = Interrupting()
    again = run_pruning_study(_config(), out, executor=ex, progress=None)
    assert ex.tasks == [] and _figures(again) == _figures(doc)


def test_interrupted_study_resumes_to_the_same_records(study, tmp_path):
    _, doc, _ = study
    ex = Interrupting(limit=3)      # the 2 scale points, the sources, then Ctrl-C at the first pruned point
    with pytest.raises(KeyboardInterrupt):
        run_pruning_study(_config(), tmp_path, executor=ex, progress=None)
    assert ex.tasks == ["mlp-900-width-full", "mlp-300-width-full", "mlp-source"]
    assert {p.stem for p in (tmp_path / "pruning" / "records").glob("*.json")} == {"mlp-source-s0", "mlp-source-s1"}
    (tmp_path / "pruning" / "runs" / "mlp-300-prune-s0").mkdir()          # a run killed part-way
    ex = Interrupting()
    again = run_pruning_study(_config(), tmp_path, executor=ex, progress=None)
    assert sorted(ex.tasks) == ["mlp-300-prune", "mlp-300-prune-scratch", "mlp-900-prune", "mlp-900-prune-scratch"]
    assert _figures(again) == _figures(doc)


def _readme_command() -> list[str]:
    """The study guide's ``compress sweep ... --methods scale,prune,prune-scratch`` line (``docs/guides/study.md``,
    where the README's how-to sections moved), as argv after ``compress``."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "guides" / "study.md").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("compress sweep") and "--methods" in ln]
    return shlex.split(line)[1:]


def test_two_jobs_give_the_same_records_as_one(study, tmp_path, capsys):
    """The README's command (at test size: later options win) with --jobs 2 gives the records of --jobs 1."""
    _, doc, _ = study
    out = tmp_path / "jobs2"
    argv = _readme_command()
    assert argv[argv.index("--methods") + 1] == "scale,prune,prune-scratch"
    assert main([*argv, *ARGS, "--jobs", "2",
                 "--out", str(out)]) == 0
    assert "12 runs compared" in capsys.readouterr().out
    assert _figures(load_pruning(out)) == _figures(doc)


def test_report_has_the_section_and_figure(study, tmp_path):
    out, doc, _ = study
    rows = summarize_pruning(doc)
    assert {r["method"] for r in rows} == {"scale", "prune", "prune-scratch"} and all(r["n"] == 2 for r in rows)
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "Liu et al. 2019" in text and "prune-scratch vs prune" in text
    assert (tmp_path / "rep" / "pruning_vs_params.png").stat().st_size > 0
    assert "prune source 1.0 of 1" in text and "prune-scratch 2.0 of 2" in text
    table = (tmp_path / "rep" / "pruning.csv").read_text().splitlines()
    assert len(table) == 1 + 12 + 2 and table[0].startswith("run_id,family,budget,method")


def test_changed_settings_are_refused_unless_overwrite(study, tmp_path):
    out, _, _ = study
    with pytest.raises(ValueError, match="other settings"):
        run_pruning_study(_config(), out, source_factor=3.0, progress=None)


def test_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="methods must be among"):
        run_pruning_study(_config(), tmp_path / "a", methods=("scale", "distill"))
    with pytest.raises(ValueError, match="epochs >= 2"):
        run_pruning_study(_config(epochs=1), tmp_path / "b")
    with pytest.raises(ValueError, match="source_factor"):
        run_pruning_study(_config(), tmp_path / "c", source_factor=0.5)
    with pytest.raises(ValueError, match="one resolution"):
        run_pruning_study(_config(policies=("compound_res",)), tmp_path / "d")
    assert main(["sweep", "--data", DATA, "--methods", "scale,bogus", "--out", str(tmp_path / "e")]) == 2
