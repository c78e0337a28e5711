"""compress.study.runner and .tasks: one runner (TaskRunner) for a sweep's points and the pruning comparison's
tasks, records and failed records per task kind, and run_id, the one way run ids are built."""

import pickle

import pytest

from compress.models import create
from compress.study import PointTask, PruneTask, TaskRunner, run_id
from compress.study.data_cache import load_data

DATA = "synthetic:n=120,classes=3,size=8"
TRAIN = {"epochs": 1, "batch_size": 32, "lr": 1e-2, "seed": 0}


def point(tmp_path, **kw):
    card = create("mlp", num_classes=3, in_chans=1, input_size=8, width_mult=0.25).card
    task_id = PointTask.make_id("mlp", 20_000, "width", "full")
    base = dict(task_id=task_id, family="mlp", budget=20_000, policy="width", variant="full", seeds=(0, 1),
                card=card, macs=1000, train=TRAIN, data=DATA, data_options={},
                run_dirs=tuple(str(tmp_path / "runs" / run_id(task_id, s)) for s in (0, 1)))
    return PointTask(**{**base, **kw})


def scratch(tmp_path, card, **kw):
    task_id = PruneTask.make_id("mlp", 20_000, "prune-scratch")
    base = dict(task_id=task_id, family="mlp", budget=20_000, method="prune-scratch", seeds=(0, 1), card=card,
                train=TRAIN, data=DATA, data_options={},
                run_dirs=tuple(str(tmp_path / "pruning" / "runs" / run_id(task_id, s)) for s in (0, 1)))
    return PruneTask(**{**base, **kw})


def test_run_ids():
    assert run_id("cnn-5000-width-full", 3) == "cnn-5000-width-full-s3"
    assert PointTask.make_id("cnn", 5000, "compound", "no_augment") == "cnn-5000-compound-no_augment"
    assert PruneTask.make_id("mlp", 900, "prune") == "mlp-900-prune"
    assert PruneTask.make_id("mlp", None, "source") == "mlp-source"


def test_one_runner_trains_points_and_pruning_tasks_alike(tmp_path):
    """The same card, seeds, settings and data give the same runs whichever kind of task holds them; each kind
    makes its own record."""
    runner = pickle.loads(pickle.dumps(TaskRunner(load_data(DATA, {}))))   # executors ship it pickled
    p = point(tmp_path)
    points = runner(p)
    pruned = runner(scratch(tmp_path, p.card))
    assert [r["run_id"] for r in points] == ["mlp-20000-width-full-s0", "mlp-20000-width-full-s1"]
    assert [r["run_id"] for r in pruned] == ["mlp-20000-prune-scratch-s0", "mlp-20000-prune-scratch-s1"]
    for a, b in zip(points, pruned):
        assert "error" not in a and "error" not in b
        assert (a["val_acc"], a["param_count"], a["epochs"]) == (b["val_acc"], b["param_count"], b["epochs"])
        assert (a["policy"], a["variant"], b["method"], b["max_epochs"]) == ("width", "full", "prune-scratch", 1)
        assert a["bytes_int8"] < a["bytes_fp32"] and b["macs"] > 0
        assert (tmp_path / a["run_dir"] / "checkpoint.pt").exists() and a["run_dir"].startswith("runs/")
        assert (tmp_path / b["run_dir"] / "checkpoint.pt").exists() and b["run_dir"].startswith("pruning/runs/")


@pytest.mark.parametrize("kind", ["point", "prune"])
def test_a_task_that_raises_comes_back_as_failed_records(tmp_path, kind):
    bad = {**TRAIN, "teacher": str(tmp_path / "no-such-run")}
    p = point(tmp_path, train=bad)
    task = p if kind == "point" else scratch(tmp_path, p.card, train=bad)
    labels = ({"policy": "width", "variant": "full"} if kind == "point" else {"method": "prune-scratch"})
    records = TaskRunner(load_data(DATA, {}))(task)
    assert [list(r) for r in records] == [["run_id", "family", "budget", *labels, "seed", "error"]] * 2
    for seed, r in zip((0, 1), records):
        assert r == {"run_id": task.run_id(seed), "family": "mlp", "budget": 20_000, **labels, "seed": seed,
                     "error": r["error"]}
        assert r["error"].startswith("FileNotFoundError: ") and "no-such-run" in r["error"]
    # what an executor that lost the task gets: its message as given
    assert [r["error"] for r in TaskRunner().failed(task, "lost with its node")] == ["lost with its node"] * 2
