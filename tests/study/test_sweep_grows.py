"""Sweeps that grow: new budgets, families, policies, seeds or ablations added to a sweep folder keep its
finished runs and train only what is new; a changed training or data setting, or a dropped point, is refused.
The settings that change the images are printed as a sweep starts and written in its report."""

import json

import pytest

from compress.study import SweepConfig, run_sweep, write_report

DATA = "synthetic:n=240,classes=3,size=12"


def tiny(**kw):
    base = dict(data=DATA, families=("mlp",), budgets=(5_000,), policies=("width",), resolution=1.0, seeds=1,
                epochs=1, patience=None, batch_size=32, latency=False)
    return SweepConfig(**{**base, **kw})


class Recording:
    def __init__(self):
        self.calls = []

    def run(self, fn, tasks):
        for task in tasks:
            self.calls.append((task.task_id, task.seeds))
            yield fn(task)


def test_adding_a_budget_family_and_seed_trains_only_the_new_runs(tmp_path):
    run_sweep(tiny(), tmp_path, progress=None)
    first = (tmp_path / "records" / "mlp-5000-width-full-s0.json").read_text()
    ex, said = Recording(), []
    results = run_sweep(tiny(budgets=(5_000, 12_000)), tmp_path, executor=ex, progress=said.append)
    assert ex.calls == [("mlp-12000-width-full", (0,))]
    assert "the sweep grows (changed: budgets): its finished runs are kept" in said
    assert (tmp_path / "records" / "mlp-5000-width-full-s0.json").read_text() == first
    assert {r["budget"] for r in results["records"]} == {5_000, 12_000}
    stored = json.loads((tmp_path / "sweep.json").read_text())
    assert stored["config"]["budgets"] == [5_000, 12_000] and stored["grown"][0]["changed"] == ["budgets"]
    ex = Recording()
    results = run_sweep(tiny(budgets=(5_000, 12_000), families=("mlp", "cnn"), seeds=2), tmp_path, executor=ex,
                        progress=None)
    assert sorted(ex.calls) == [("cnn-12000-width-full", (0, 1)), ("cnn-5000-width-full", (0, 1)),
                                ("mlp-12000-width-full", (1,)), ("mlp-5000-width-full", (1,))]
    assert len(results["records"]) == 8


def test_a_default_ablation_point_stays_when_a_larger_budget_is_added(tmp_path):
    run_sweep(tiny(ablate=("augment",)), tmp_path, progress=None)
    ex = Recording()
    results = run_sweep(tiny(ablate=("augment",), budgets=(5_000, 12_000)), tmp_path, executor=ex, progress=None)
    assert ex.calls == [("mlp-12000-width-full", (0,))]
    assert results["config"]["ablate_budget"] == 5_000
    assert {(r["budget"], r["variant"]) for r in results["records"]} == \
        {(5_000, "full"), (5_000, "no_augment"), (12_000, "full")}


@pytest.mark.parametrize("change, named", [
    (dict(epochs=2), "epochs"), (dict(resolution=0.5), "resolution"), (dict(train={"label_smoothing": 0.1}), "train"),
    (dict(budgets=(12_000,)), "budgets"), (dict(seeds=1, families=("cnn",)), "families"),
])
def test_a_changed_setting_or_a_dropped_point_is_refused(tmp_path, change, named):
    run_sweep(tiny(budgets=(5_000, 12_000) if named != "budgets" else (5_000,), seeds=1), tmp_path,
              executor=Recording(), progress=None)
    base = dict(budgets=(5_000, 12_000)) if named != "budgets" else {}
    before = sorted(p.name for p in (tmp_path / "records").iterdir())
    with pytest.raises(ValueError, match=f"another config \\(differs in: {named}"):
        run_sweep(tiny(**{**base, **change}), tmp_path, progress=None)
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == before


def test_data_settings_are_said_at_the_start_and_written_in_the_report(tmp_path):
    said = []
    run_sweep(tiny(resolution=0.5), tmp_path / "s", progress=said.append)
    line = ("data settings: images resized 12x12 -> 8x8 (resolution 0.5); augmentation on (rotate +-10 deg, "
            "translate +-10% of the side, scale 0.9-1.1, flips ")
    assert said[0].startswith(line) and sum(s.startswith("data settings:") for s in said) == 1
    text = write_report(tmp_path / "s", tmp_path / "r").read_text()
    assert "- " + said[0] in text
    said = []
    run_sweep(tiny(train={"augment": False}), tmp_path / "t", progress=said.append)
    assert said[0].startswith("data settings: images at 12x12 as stored (resolution 1); augmentation off")
