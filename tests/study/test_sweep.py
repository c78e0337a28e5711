import csv
import dataclasses
import json

import pytest

from compress.bench import float_runtimes
from compress.study import ProcessExecutor, SweepConfig, run_sweep, summarize
from compress.study.data_cache import load_data
from compress.study.records import CSV_COLUMNS

DATA = "synthetic:n=240,classes=3,size=12"


def tiny(**kw):
    base = dict(data=DATA, families=("cnn", "mlp"), budgets=(5_000, 12_000), policies=("width",), resolution=1.0,
                seeds=2, epochs=1, patience=None, batch_size=32, latency=False)
    return SweepConfig(**{**base, **kw})


class Interrupting:
    """Runs ``limit`` tasks, then raises KeyboardInterrupt as if the user pressed Ctrl-C."""

    def __init__(self, limit):
        self.limit = limit

    def run(self, fn, tasks):
        for i, task in enumerate(tasks):
            if i == self.limit:
                raise KeyboardInterrupt
            yield fn(task)


class Recording:
    """Runs tasks in this process and notes what it was given: (task id, seeds) of each task."""

    def __init__(self):
        self.calls = []

    def run(self, fn, tasks):
        for task in tasks:
            self.calls.append((task.task_id, task.seeds))
            yield fn(task)


class BreakingCnn:
    """Runs tasks in this process after giving the cnn points a teacher run that does not exist, so that they
    raise inside the runner, as a point with a bad setting does."""

    def run(self, fn, tasks):
        for task in tasks:
            if task.family == "cnn":
                task = dataclasses.replace(task, train={**task.train, "teacher": "/nonexistent/run"})
            yield fn(task)


def test_sweep_writes_results_and_matches_budgets(tmp_path):
    results = run_sweep(tiny(), tmp_path, progress=None)
    recs = results["records"]
    assert len(recs) == 2 * 2 * 2 and not results["skipped"]
    for r in recs:
        assert r["param_count"] <= r["budget"] and r["bytes_int8"] < r["bytes_fp16"] < r["bytes_fp32"]
        assert 0 <= r["val_acc"] <= 1 and r["macs"] > 0
        assert (tmp_path / r["run_dir"] / "checkpoint.pt").exists()
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert len(rows) == len(recs) and set(CSV_COLUMNS) <= set(rows[0])
    # families sized to the same budget have matched parameter counts (within the budget's step)
    by = {(r["family"], r["budget"]): r["param_count"] for r in recs}
    assert abs(by[("cnn", 12_000)] - by[("mlp", 12_000)]) / 12_000 < 0.05


def test_resume_after_kill_keeps_finished_and_redoes_interrupted(tmp_path):
    config = tiny()
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path, executor=Interrupting(3), progress=None)   # 3 of 4 points, 2 seeds each
    finished = {p.stem for p in (tmp_path / "records").glob("*.json")}
    assert len(finished) == 6
    assert len(json.loads((tmp_path / "results.json").read_text())["records"]) == 6
    assert "mlp-5000-width-full-s0" not in finished          # points run longest first (by MACs)
    # a point killed part-way: a staging folder and a run folder without a record
    (tmp_path / "runs" / ".mlp-5000-width-full-s0.partial-999").mkdir()
    (tmp_path / "runs" / "mlp-5000-width-full-s1").mkdir()
    ex = Recording()
    results = run_sweep(config, tmp_path, executor=ex, progress=None)
    assert len(results["records"]) == 8
    assert ex.calls == [("mlp-5000-width-full", (0, 1))]
    assert not (tmp_path / "runs" / ".mlp-5000-width-full-s0.partial-999").exists()
    # a rerun of a finished sweep trains nothing; a lost record retrains only its seed
    ex = Recording()
    run_sweep(config, tmp_path, executor=ex, progress=None)
    assert ex.calls == []
    (tmp_path / "records" / "cnn-5000-width-full-s1.json").unlink()
    results = run_sweep(config, tmp_path, executor=ex, progress=None)
    assert ex.calls == [("cnn-5000-width-full", (1,))] and len(results["records"]) == 8


def test_changed_config_is_refused_unless_overwrite(tmp_path):
    run_sweep(tiny(seeds=1, budgets=(5_000,)), tmp_path, progress=None)
    with pytest.raises(ValueError, match="another config.*epochs"):
        run_sweep(tiny(seeds=1, budgets=(5_000,), epochs=2), tmp_path, progress=None)
    results = run_sweep(tiny(seeds=1, budgets=(5_000,), epochs=2), tmp_path, overwrite=True, progress=None)
    assert all(r["epochs"] == 2 for r in results["records"])


def test_ablation_and_skipped_points(tmp_path):
    results = run_sweep(tiny(seeds=1, budgets=(30, 12_000), families=("cnn",), ablate=("augment", "normalize")),
                        tmp_path, progress=None)
    variants = {r["variant"] for r in results["records"]}
    assert variants == {"full", "no_augment", "no_normalize"}
    assert results["skipped"] and "smallest model" in results["skipped"][0]["reason"]
    ab = [r for r in results["records"] if r["variant"] != "full"]
    assert all(r["budget"] == 12_000 for r in ab)


def test_latency_is_measured_after_training_and_kept_on_resume(tmp_path):
    config = tiny(seeds=1, budgets=(5_000,), families=("mlp",), latency=True)
    results = run_sweep(config, tmp_path, progress=None)
    (record,) = results["records"]
    assert record["latency_ms"] > 0
    path = tmp_path / "records" / f"{record['run_id']}.json"
    stored = json.loads(path.read_text())
    assert stored["latency_ms"] == record["latency_ms"]
    (row,) = csv.DictReader((tmp_path / "results.csv").open())     # the CSV names the runtime it was timed in
    assert row["latency_runtime"] == record["latency_runtime"] and row["latency_runtime"] in float_runtimes("cpu")
    # a rerun measures nothing again: the record file is not rewritten (every write is a new file, renamed)
    inode = path.stat().st_ino
    again = run_sweep(config, tmp_path, progress=None)
    assert path.stat().st_ino == inode and again["records"] == results["records"]


def test_process_executor_gives_same_records(tmp_path):
    config = tiny(seeds=2, budgets=(5_000,), families=("mlp",))
    seq = run_sweep(config, tmp_path / "a", progress=None)
    par = run_sweep(config, tmp_path / "b", executor=ProcessExecutor(2, threads_per_job=1), progress=None)
    key = lambda rs: sorted((r["run_id"], r["val_acc"]) for r in rs)  # noqa: E731
    assert key(seq["records"]) == key(par["records"])


def test_point_trains_its_seeds_together_like_separate_runs(tmp_path):
    """A point's seeds train as one stacked model; each record matches the same seed trained alone."""
    import torch

    from compress.models import ModelCard, rebuild
    from compress.train import TrainConfig, fit

    config = tiny(seeds=2, budgets=(5_000,), families=("mlp",), epochs=2)
    results = run_sweep(config, tmp_path, progress=None)
    sizing = json.loads((tmp_path / "sizing.json").read_text())["mlp"]["width"]["5000"]
    bundle = load_data(config.data, config.data_options)
    for r in results["records"]:
        assert r["members"] == 2 and r["policy"] == "width" and r["epochs"] == 2
        torch.manual_seed(r["seed"])
        alone = fit(rebuild(ModelCard(sizing["build_args"])), bundle,
                    TrainConfig.from_dict(config.train_settings(r["seed"], {})), progress=False)
        assert r["val_acc"] == pytest.approx(alone.metrics["val_acc"], abs=1e-6)


def test_policies_are_points_and_patience_stops_early(tmp_path):
    config = tiny(seeds=2, budgets=(12_000,), families=("cnn",), policies=("width", "compound"), epochs=4,
                  patience=1, min_delta=0.99)
    results = run_sweep(config, tmp_path, progress=None)
    by = {(r["policy"], r["seed"]): r for r in results["records"]}
    assert set(by) == {("width", 0), ("width", 1), ("compound", 0), ("compound", 1)}
    assert by[("compound", 0)]["depth_mult"] < 1 == by[("width", 0)]["depth_mult"]
    assert all(r["epochs"] == 2 and r["converged"] for r in results["records"])   # no gain > 0.99: stop at 2


def test_summarize_intervals():
    recs = [dict(family="cnn", budget=10, variant="full", seed=s, val_acc=v, test_acc=None, n_val=100, n_test=0,
                 width_mult=1.0, param_count=9, macs=5, bytes_fp32=1, bytes_fp16=1, bytes_int8=1, train_seconds=1.0,
                 latency_ms=None) for s, v in enumerate([0.5, 0.6, 0.7])]
    (row,) = summarize({"records": recs})
    assert row["metric"] == "val_acc" and row["acc"]["mean"] == pytest.approx(0.6)
    assert row["acc"]["high"] - row["acc"]["mean"] == pytest.approx(4.303 * 0.1 / 3 ** 0.5)


@pytest.mark.parametrize("kw, match", [
    (dict(families=("resnet",)), "unknown family"), (dict(budgets=(0,)), "budgets"),
    (dict(ablate=("dropout",)), "unknown ablation"), (dict(seeds=0), "seeds"),
    (dict(policies=("depth",)), "unknown policy"), (dict(policies=()), "policies"),
    (dict(policies=("width", "width")), "distinct"), (dict(min_channels=0), "min_channels"),
    (dict(patience=0), "patience"), (dict(resolution=0), "resolution"), (dict(resolution=2), "resolution"),
    (dict(train={"optimiser": "sgd"}), "unknown settings"),
])
def test_bad_config(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_cli_sweep_and_report(tmp_path, capsys):
    from compress.cli import main

    out = tmp_path / "sw"
    assert main(["sweep", "--data", DATA, "--families", "cnn,mlp", "--budgets", "5k", "--seeds", "1",
                 "--epochs", "1", "--policies", "width", "--no-latency", "--out", str(out)]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "cnn vs mlp" in text and (tmp_path / "rep" / "accuracy_vs_params.png").exists()
    assert main(["sweep", "--data", DATA, "--families", "cnn", "--budgets", "5k", "--seeds", "1",
                 "--epochs", "1", "--policies", "width", "--no-latency", "--out", str(out)]) == 2
    assert "another config" in capsys.readouterr().err


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path):
    config = tiny(seeds=1, budgets=(5_000,))
    results = run_sweep(config, tmp_path, executor=BreakingCnn(), progress=None)
    assert [r["run_id"] for r in results["records"]] == ["mlp-5000-width-full-s0"]
    (failed,) = results["failed"]
    assert failed["run_id"] == "cnn-5000-width-full-s0" and failed["error"].startswith("FileNotFoundError: ")
    assert "/nonexistent/run" in failed["error"]
    assert {k: failed[k] for k in ("family", "budget", "policy", "variant", "seed")} == \
        {"family": "cnn", "budget": 5_000, "policy": "width", "variant": "full", "seed": 0}
    assert json.loads((tmp_path / "failed" / "cnn-5000-width-full-s0.json").read_text()) == failed
    assert not (tmp_path / "records" / "cnn-5000-width-full-s0.json").exists()
    # a rerun tries the failed run again (and only it)
    ex = Recording()
    results = run_sweep(config, tmp_path, executor=ex, progress=None)
    assert ex.calls == [("cnn-5000-width-full", (0,))]
    assert len(results["records"]) == 2 and results["failed"] == [] and not (tmp_path / "failed").exists()


def test_a_policy_that_chose_a_resolution_trains_on_resized_data(tmp_path):
    config = tiny(seeds=2, budgets=(5_000,), families=("mlp",), policies=("compound_res",), epochs=1)
    results = run_sweep(config, tmp_path, progress=None)
    (r0, r1) = results["records"]
    assert r0["input_size"] < 12 and r0["input_size"] == r1["input_size"]
    from compress.train import load_run
    assert load_run(tmp_path / r0["run_dir"]).data().input_size == r0["input_size"]


def test_resolution_resizes_the_sweeps_images(tmp_path):
    results = run_sweep(tiny(seeds=1, budgets=(5_000,), families=("mlp",), resolution=0.75), tmp_path, progress=None)
    (r,) = results["records"]
    assert r["input_size"] == 9 and json.loads((tmp_path / "sweep.json").read_text())["data"]["input_size"] == 9
