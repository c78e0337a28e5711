"""compress.search end to end on a small trained run: outputs, the rule, resume, refusals, bad input."""

import json
import os

import pytest
import torch

from compress.budget import Budget
from compress.search import SearchBudgetError, SearchConfig, search
from compress.search.candidates import choose

BUDGET = 6_000      # the suite's tiny CNN: 5.6 kB in int8, 16.6 kB in fp32; the scaled family bottoms out at 5.5 kB


def small(**kw):
    base = dict(importances=("l1",), scopes=("uniform",), storage=("int8+fold",), codecs=("int8+fold",),
                finetune_epochs=0.5, deep_prune_epochs=0.5, deep_finetune_epochs=0.25, runtimes=("eager",),
                latency_repeats=3, latency_warmup=1)
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run(images=300, epochs=2)     # the suite's small CNN (tests/conftest.py)


@pytest.fixture(scope="module")
def done(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "s"
    lines = []
    result = search(run_dir, Budget(max_bytes=BUDGET), small(), out=out, log=lines.append)
    return result, out, lines


def test_every_output_is_written_and_agrees(done):
    result, out, lines = done
    for name in ("candidates.csv", "candidates.json", "pareto.png", "report.md", "best.npz", "search.json"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "candidates.json").read_text())
    assert doc["best"] == result.best.id and len(doc["candidates"]) == len(result.candidates)
    assert (out / "best.npz").read_bytes() == (out / result.best.artifact).read_bytes()
    assert os.path.getsize(out / "best.npz") == result.best.size_bytes <= BUDGET
    csv = (out / "candidates.csv").read_text().splitlines()
    assert len(csv) == 1 + len(result.candidates) and "val_correct" not in csv[0]
    assert any("front" in line for line in lines)        # the progress display shows the front as it grows


def test_each_lever_and_single_method_is_in_the_same_run(done):
    result, _, _ = done
    methods = {c.method for c in result.candidates}
    assert {"dense", "codec", "joint", "deep", "prune", "scaled", "random"} <= methods
    ids = {c.id for c in result.candidates}
    assert {"prune-l1-uniform-int8~int8+fold", "deep-pruned~deep", "deep-dense~deep",
            "control-random-uniform-int8~int8+fold", "prune-only-fp32~fp32", "scaled-int8~int8+fold"} <= ids
    pruned = next(c for c in result.candidates if c.id == "prune-l1-uniform-int8~int8+fold")
    assert pruned.parent == "dense" and pruned.param_count < result.dense.param_count
    assert next(c for c in result.candidates if c.id == "deep-pruned~deep").parent == "deep-parent"


def test_measured_for_real(done):
    from compress.export import load
    from compress.train import evaluate, load_run

    result, out, _ = done
    best = result.best
    assert best.size_bytes == os.path.getsize(out / best.artifact)
    model = load(out / best.artifact)
    assert best.param_count == sum(p.numel() for p in model.parameters())
    run = load_run(json.loads((out / "search.json").read_text())["source"])
    acc = evaluate(model, run.data().val, normalizer=run.normalizer)["acc"]
    assert best.val_acc == pytest.approx(acc) and best.val_n == len(run.data().val)
    assert best.val_low <= best.val_acc <= best.val_high
    assert best.latency_ms > 0 and best.runtime == "eager" and best.fits


def test_the_winner_follows_the_rule_on_validation_only(done):
    result, _, _ = done
    winner, tied = choose(result.candidates)
    assert winner is result.best and result.best in tied
    assert all(c.fits for c in tied)
    front = [c for c in result.candidates if c.front]
    assert front and all(c.latency_ms is not None for c in front)


def test_report_names_the_winner_the_splits_and_the_single_methods(done):
    result, out, _ = done
    text = (out / "report.md").read_text()
    assert result.best.id in text and "validation split" in text and "never used to choose" in text
    for words in ("codec only", "Deep Compression only", "pruning only", "trained from scratch", "control"):
        assert words in text


def test_resume_keeps_finished_work_and_redoes_what_is_missing(done, run_dir):
    result, out, _ = done
    models = {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.json")}
    victim = out / "candidates" / "prune-l1-uniform-int8__int8_fold.json"
    before = json.loads(victim.read_text())
    victim.unlink()
    lines = []
    again = search(run_dir, Budget(max_bytes=BUDGET), small(), out=out, log=lines.append)
    assert not any(line.startswith("models") for line in lines)        # no model trained again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "models").glob("*.json")} == models
    assert victim.is_file() and [line for line in lines if "int8_fold" in line or "prune-l1-uniform-int8~" in line]
    after = json.loads(victim.read_text())
    for key in ("size_bytes", "param_count", "macs", "val_acc", "val_correct", "test_acc"):
        assert after[key] == before[key], key          # the same model written and scored again
    assert len(again.candidates) == len(result.candidates)


def test_changed_settings_are_refused(done, run_dir):
    _, out, _ = done
    with pytest.raises(ValueError, match=r"other settings \(differs in: .*codecs"):
        search(run_dir, Budget(max_bytes=BUDGET), small(codecs=("fp16+fold",)), out=out)
    with pytest.raises(ValueError, match=r"differs in: budget"):
        search(run_dir, Budget(max_bytes=BUDGET + 1), small(), out=out)


def test_a_budget_nothing_meets_lists_the_nearest(run_dir, tmp_path):
    out = tmp_path / "none"
    cfg = small(deep=False, baselines=False)
    with pytest.raises(SearchBudgetError, match="nearest") as info:
        search(run_dir, Budget(max_bytes=400), cfg, out=out)
    result = info.value.result
    assert result.best is None and result.nearest and not (out / "best.npz").exists()
    assert (out / "candidates.csv").is_file() and "No candidate meets" in (out / "report.md").read_text()


def test_a_latency_limit_is_applied_to_measured_latency(run_dir, tmp_path):
    cfg = small(deep=False, baselines=False)
    dense = search(run_dir, Budget(max_bytes=10**7), cfg, out=tmp_path / "a").dense
    limit = dense.latency_ms * 0.999
    try:
        result = search(run_dir, Budget(max_bytes=10**7, max_latency_ms=limit), cfg, out=tmp_path / "b")
    except SearchBudgetError as exc:
        result = exc.result
    for c in result.candidates:
        if c.latency_ms is not None:
            assert c.fits_latency == (c.latency_ms <= limit)
            assert not c.fits or c.latency_ms <= limit


def test_jobs_train_the_models_in_worker_processes(run_dir, tmp_path):
    from compress.study import make_executor

    cfg = small(deep=False)
    result = search(run_dir, Budget(max_bytes=BUDGET), cfg, out=tmp_path / "j", executor=make_executor(2))
    assert (tmp_path / "j" / "models" / "prune-l1-uniform-int8" / "checkpoint.pt").is_file()
    assert result.best is not None


def test_a_time_budget_leaves_out_models_and_says_so(run_dir, tmp_path):
    try:
        result = search(run_dir, Budget(max_bytes=BUDGET), small(time_budget_s=8), out=tmp_path / "t")
    except SearchBudgetError as exc:
        result = exc.result
    assert result.dense.val_acc is not None
    left = [s for s in result.skipped if "time budget" in s]
    assert left and "left out" in (tmp_path / "t" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_any_work(run_dir, tmp_path):
    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="max_bytes"):
        search(run_dir, Budget(max_latency_ms=5), small(), out=out)
    with pytest.raises(ValueError, match="per-call overhead"):
        search(run_dir, Budget(max_bytes=BUDGET, max_latency_ms=1e-6), small(), out=out)
    with pytest.raises(ValueError, match="nope.*unknown"):
        search(run_dir, Budget(max_bytes=BUDGET), small(runtimes=("nope",)), out=out)
    with pytest.raises(ValueError, match="shorter than one candidate"):
        search(run_dir, Budget(max_bytes=BUDGET), small(time_budget_s=1e-4), out=out)
    with pytest.raises(TypeError, match="Budget"):
        search(run_dir, {"max_bytes": 5}, small(), out=out)
    assert not out.exists()


def test_a_run_without_its_data_is_refused(tmp_path):
    from compress import data, models, train

    bundle = data.load("synthetic:n=60,classes=3,size=16")
    arrays = data.from_arrays(bundle.train.x.numpy(), bundle.train.y.numpy())
    train.fit(models.create("mlp", width_mult=0.25, num_classes=3, input_size=16), arrays,
              train.TrainConfig(epochs=1), out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="no data to fine-tune on"):
        search(tmp_path / "r", Budget(max_bytes=BUDGET), small(), out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_missing_run_is_named(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="nothere"):
        search(tmp_path / "nothere", Budget(max_bytes=BUDGET), small(), out=tmp_path / "s")


def test_a_model_and_its_data_from_python(tmp_path):
    from compress import data, models
    from compress.train import TrainConfig

    bundle = data.load("synthetic:n=200,classes=3,size=16")
    torch.manual_seed(0)
    model = models.create("mlp", width_mult=0.25, num_classes=3, input_size=16)
    cfg = small(deep=False, baselines=False)
    result = search(model, Budget(max_bytes=5_000), cfg, out=tmp_path / "m", data=bundle,
                    train=TrainConfig(epochs=1, augment=False))
    assert result.best is not None and result.best.size_bytes <= 5_000
    assert "Source model `mlp`" in (tmp_path / "m" / "report.md").read_text()
    with torch.no_grad():                                   # other weights: the folder's search is refused
        next(model.parameters()).add_(1.0)
    with pytest.raises(ValueError, match="weights_sha256"):
        search(model, Budget(max_bytes=5_000), cfg, out=tmp_path / "m", data=bundle,
               train=TrainConfig(epochs=1, augment=False))
    with pytest.raises(TypeError, match="data="):
        search(model, Budget(max_bytes=5_000), cfg, out=tmp_path / "n")
    with pytest.raises(ValueError, match="no card"):
        search(torch.nn.Linear(4, 2), Budget(max_bytes=5_000), cfg, out=tmp_path / "n", data=bundle)
    streamed = torch.utils.data.TensorDataset(bundle.train.x, bundle.train.y)   # a bare Dataset: training data only
    with pytest.raises(ValueError, match="no validation split to choose on"):
        search(model, Budget(max_bytes=5_000), cfg, out=tmp_path / "n", data=streamed)
    with pytest.raises(TypeError, match="data must be a compress DataBundle"):
        search(model, Budget(max_bytes=5_000), cfg, out=tmp_path / "n", data=bundle.val)
    assert not (tmp_path / "n").exists()


def test_a_killed_search_resumes_without_repeating_finished_models(run_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "k"
    args = [sys.executable, "-m", "compress", "search", str(run_dir), "--max-bytes", str(BUDGET), "--out", str(out),
            "--importances", "l1", "--scopes", "uniform", "--storage", "int8+fold", "--codecs", "int8+fold",
            "--finetune-epochs", "0.5", "--no-deep", "--runtime", "eager", "--quiet"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "models" / "prune-l1-uniform-int8.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists() and (out / "sweep.lock").exists()          # killed mid-search, its lock left behind
    stamp = first.stat().st_mtime_ns
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert first.stat().st_mtime_ns == stamp and (out / "best.npz").is_file()


def test_a_failed_model_is_tried_again_by_the_next_run(run_dir, tmp_path):
    out = tmp_path / "f"
    cfg = small(deep=False, baselines=False)
    search(run_dir, Budget(max_bytes=BUDGET), cfg, out=out)
    record = out / "models" / "prune-l1-uniform-int8.json"
    record.write_text(json.dumps({"task_id": "prune-l1-uniform-int8", "kind": "prune", "error": "lost worker",
                                  "seconds": 0.0}))
    for f in (out / "candidates").glob("prune-l1-uniform-int8__*.json"):
        f.unlink()
    lines = []
    result = search(run_dir, Budget(max_bytes=BUDGET), cfg, out=out, log=lines.append)
    assert any(line.startswith("models: training 1 (prune-l1-uniform-int8)") for line in lines)
    assert "error" not in json.loads(record.read_text())
    assert any(c.id == "prune-l1-uniform-int8~int8+fold" and c.error is None for c in result.candidates)


def test_a_model_from_your_own_file_is_searched_and_says_what_it_cannot_do(tmp_path):
    from compress import data, models
    from compress.train import TrainConfig

    src = tmp_path / "mynet.py"
    src.write_text("from torch import nn\n\n"
                   "class Net(nn.Module):\n"
                   "    def __init__(self, num_classes=3, in_chans=1):\n"
                   "        super().__init__()\n"
                   "        self.f = nn.Sequential(nn.Conv2d(in_chans, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),\n"
                   "                               nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
                   "        self.head = nn.Linear(16, num_classes)\n\n"
                   "    def forward(self, x):\n"
                   "        return self.head(self.f(x))\n")
    bundle = data.load("synthetic:n=120,classes=3,size=12")
    model = models.create(f"{src}:Net", num_classes=3, in_chans=1, input_size=12)
    result = search(model, Budget(max_bytes=3_000), small(deep=False), out=tmp_path / "s", data=bundle,
                    train=TrainConfig(epochs=1, augment=False))
    assert any(s.startswith("scaled-int8:") and "width argument" in s for s in result.skipped)
    assert result.best is not None and (tmp_path / "s" / "best.npz").is_file()
    from compress.export import load

    load(tmp_path / "s" / "best.npz")        # stored as a program: reloads without mynet.py's code
