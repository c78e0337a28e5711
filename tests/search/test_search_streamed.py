"""compress.search on streamed data (a TorchData over torch Datasets): searched end to end, the same per-image
validation correctness as from the bundle in memory, int8 calibration drawn from the stream as from the bundle, a
run trained on streamed data searched in a worker process, bounded memory (items alive at once), bad items named
before any folder is made."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from compress import data, models
from compress.budget import Budget
from compress.data.torch_data import TorchData
from compress.search import SearchConfig, search
from compress.train import TrainConfig

TRAIN = TrainConfig(epochs=1, batch_size=16, augment=False, device="cpu")


def small(**kw):
    base = dict(importances=("l1",), scopes=("uniform",), storage=("int8+fold",), codecs=("int8+fold",),
                finetune_epochs=0.5, deep=False, baselines=False, runtimes=("eager",), latency_repeats=3,
                latency_warmup=1)
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic:n=200,classes=3,size=16")


def _model():
    torch.manual_seed(0)
    return models.create("mlp", width_mult=0.25, num_classes=3, input_size=16)


def _streamed(bundle, **kw) -> TorchData:
    return TorchData(*(TensorDataset(s.x, s.y) for s in (bundle.train, bundle.val, bundle.test)), **kw)


@pytest.fixture(scope="module")
def both(bundle, tmp_path_factory):
    """The same model searched on the bundle and on the same data streamed, with the bundle's normalizer."""
    out = tmp_path_factory.mktemp("streamed")
    budget = Budget(max_bytes=5_000)
    config = small(runtimes=("eager", "torch_int8"))
    from_memory = search(_model(), budget, config, out=out / "memory", data=bundle, normalizer=bundle.normalizer,
                         train=TRAIN)
    streamed = search(_model(), budget, config, out=out / "stream", data=_streamed(bundle),
                      normalizer=bundle.normalizer, train=TRAIN)
    return from_memory, streamed, out / "stream"


def test_a_model_and_a_torch_dataset_are_searched_end_to_end(both, bundle):
    _, result, out = both
    assert result.best is not None and result.best.size_bytes <= 5_000 and result.best.fits
    assert {"dense", "codec", "joint"} <= {c.method for c in result.candidates}
    assert all(c.error is None for c in result.candidates)
    report = (out / "report.md").read_text()
    assert "<torch dataset TensorDataset>" in report and f"validation split ({len(bundle.val)} images)" in report
    csv = (out / "candidates.csv").read_text().splitlines()
    assert len(csv) == 1 + len(result.candidates)
    assert result.dense.val_n == len(bundle.val) and result.dense.test_n == len(bundle.test)
    pruned = next(c for c in result.candidates if c.id == "prune-l1-uniform-int8~int8+fold")
    assert pruned.param_count < result.dense.param_count      # pruned and fine-tuned on the stream
    assert isinstance(pruned.latencies["torch_int8"], float)  # int8 calibrated on images drawn from the stream


def test_the_stream_scores_every_image_as_the_bundle_does(both):
    from_memory, streamed, _ = both
    a, b = from_memory.dense, streamed.dense
    assert np.array_equal(a.correct(), b.correct()) and a.val_acc == b.val_acc and a.test_acc == b.test_acc
    codec = lambda r: next(c for c in r.candidates if c.id == "dense~int8+fold")  # noqa: E731
    assert np.array_equal(codec(from_memory).correct(), codec(streamed).correct())


def test_int8_calibration_draws_the_bundles_images_from_the_stream(bundle):
    from compress.data import model_inputs
    from compress.int8 import Int8Config
    from compress.search.measure import calibration_data

    normalizer = bundle.normalizer
    given, same = calibration_data(bundle, normalizer)
    assert given is bundle and same is normalizer                        # a bundle as it is
    split, identity = calibration_data(_streamed(bundle), normalizer)
    expected = model_inputs(bundle, Int8Config().calibration_images, normalizer=normalizer, seed=0)
    assert torch.equal(split.x, expected) and torch.equal(identity(split.x), split.x)


def test_a_torchdata_travels_to_worker_processes(bundle):
    streamed = _streamed(bundle, classes=bundle.class_names)
    streamed.prepare(16)
    again = pickle.loads(pickle.dumps(streamed))
    assert len(again.val) == len(bundle.val) and again.normalizer.to_dict() == streamed.normalizer.to_dict()
    assert [torch.equal(a, b) for a, b in zip(next(again.val.batches(8)), next(streamed.val.batches(8)))] == [1, 1]


def test_a_run_trained_on_a_stream_is_searched_with_its_data_in_a_worker_process(bundle, tmp_path):
    from compress.study.executors import ProcessExecutor
    from compress.train import fit

    run_dir = tmp_path / "run"
    fit(_model(), _streamed(bundle, classes=bundle.class_names), TRAIN, out=run_dir, progress=False, curves=False)
    with pytest.raises(ValueError, match="pass data="):          # its data cannot be reloaded
        search(run_dir, Budget(max_bytes=5_000), small(), out=tmp_path / "none")
    assert not (tmp_path / "none").exists()
    result = search(run_dir, Budget(max_bytes=5_000), small(), out=tmp_path / "s", data=_streamed(bundle),
                    executor=ProcessExecutor(1, threads_per_job=1))
    assert result.best is not None and result.best.size_bytes <= 5_000
    made = json.loads((tmp_path / "s" / "models" / "prune-l1-uniform-int8.json").read_text())
    assert not made.get("error") and made["run"] == "prune-l1-uniform-int8"
    info = json.loads((tmp_path / "s" / "models" / "prune-l1-uniform-int8" / "config.json").read_text())
    trained = json.loads((run_dir / "config.json").read_text())["data"]
    assert info["data"]["normalizer"] == trained["normalizer"]      # fine-tuned with the run's own normalization
    assert info["data"]["source"] == "<torch dataset TensorDataset>"


def test_the_driver_never_holds_a_whole_split(tmp_path, counted_dataset):
    train, val, test = counted_dataset(300, 0), counted_dataset(120, 1), counted_dataset(90, 2)
    torch.manual_seed(0)
    model = models.create("mlp", width_mult=0.25, num_classes=3, input_size=8)
    result = search(model, Budget(max_bytes=3_000), small(), out=tmp_path / "s", data=TorchData(train, val, test),
                    train=TRAIN)
    assert result.best is not None and result.dense.val_n == 120 and result.dense.test_n == 90
    assert result.best.id == "prune-l1-uniform-int8~int8+fold"   # pruned into the budget, fine-tuned on the stream
    scored = sum(c.error is None for c in result.candidates)
    assert val.reads >= 1 + 120 + scored * 120 and test.reads >= scored * 90   # checked once, then once per candidate
    assert val.most <= 16 + 1 and test.most <= 16 + 1      # one evaluation batch at a time, and the first item
    assert train.most <= 256 + 1 < len(train)             # int8 calibration's draws: 256 at a time


def test_bad_streamed_data_is_named_before_any_folder(bundle, tmp_path):
    x, y = bundle.val.x.clone(), bundle.val.y.clone()
    y[5] = 7
    bad = TorchData(TensorDataset(bundle.train.x, bundle.train.y), val=TensorDataset(x, y),
                    classes=bundle.class_names)
    with pytest.raises(ValueError, match=r"val item 5: label 7 out of range: labels must be in \[0, 3\)"):
        search(_model(), Budget(max_bytes=5_000), small(), out=tmp_path / "a", data=bad, train=TRAIN)
    shuffled = TorchData(TensorDataset(bundle.train.x, bundle.train.y),
                         val=DataLoader(TensorDataset(bundle.val.x, bundle.val.y), batch_size=8, shuffle=True))
    with pytest.raises(ValueError, match="validation DataLoader shuffles"):
        search(_model(), Budget(max_bytes=5_000), small(), out=tmp_path / "b", data=shuffled, train=TRAIN)
    four = _streamed(bundle, num_classes=4)
    with pytest.raises(ValueError, match="the model has 3 outputs but the data has 4 classes"):
        search(_model(), Budget(max_bytes=5_000), small(), out=tmp_path / "c", data=four, train=TRAIN)
    assert not any((tmp_path / name).exists() for name in "abc")
