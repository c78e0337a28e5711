"""Pruning with streamed data: taylor importance and prune_run's scoring and fine-tuning from a TorchData, for a run
trained on a torch Dataset (whose data cannot be reloaded)."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from compress import data, models
from compress.data.torch_data import TorchData
from compress.prune import PruneConfig, prune
from compress.prune.runs import prune_run
from compress.train import TrainConfig
from compress.train.fitting import fit


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic:n=90,classes=3,size=16")


def _streamed(bundle) -> TorchData:
    return TorchData(*(TensorDataset(s.x, s.y) for s in (bundle.train, bundle.val, bundle.test)),
                     classes=bundle.class_names)


@pytest.fixture(scope="module")
def run_dir(bundle, tmp_path_factory):
    torch.manual_seed(0)
    model = models.create("cnn", channels=[8, 16], num_classes=3, input_size=16)
    out = tmp_path_factory.mktemp("streamed") / "run"
    fit(model, _streamed(bundle), TrainConfig(epochs=1, batch_size=16, augment=False, device="cpu"), out=out,
        progress=False, curves=False)
    return out


def test_taylor_importance_reads_a_stream_as_a_bundle(bundle):
    torch.manual_seed(0)
    model = models.create("cnn", channels=[8, 16], num_classes=3, input_size=16)
    config = PruneConfig(ratio=0.5, importance="taylor", taylor_images=40)
    from_memory = prune(model, config, data=bundle)
    streamed = prune(model, config, data=TorchData(TensorDataset(bundle.train.x, bundle.train.y),
                                                   mean=bundle.mean, std=bundle.std))
    assert from_memory.model.card.build_args["widths"] == streamed.model.card.build_args["widths"]


def test_prune_run_fine_tunes_on_streamed_data(run_dir, bundle, tmp_path):
    with pytest.raises(ValueError, match="in-memory data"):   # its data cannot be reloaded: give it
        prune_run(run_dir, PruneConfig(ratio=0.5, importance="l1"))
    result, run = prune_run(run_dir, PruneConfig(ratio=0.5, importance="taylor", taylor_images=32,
                                                 finetune_epochs=1), data=_streamed(bundle), out=tmp_path / "pruned")
    assert result.after["param_count"] < result.before["param_count"] and len(run.history) == 1
    assert run.metrics["test_n"] == len(bundle.test)
    info = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert info["data"]["source"] == "<torch dataset TensorDataset>"
    trained = json.loads((run_dir / "config.json").read_text())["data"]["normalizer"]
    assert info["data"]["normalizer"] == trained                # fine-tuned with the run's own normalization
    wrong = TorchData(TensorDataset(bundle.train.x, bundle.train.y), val=TensorDataset(bundle.val.x, bundle.val.y),
                      num_classes=4)
    with pytest.raises(ValueError, match="the model has 3 outputs but the data has 4 classes"):
        prune_run(run_dir, PruneConfig(ratio=0.5), data=wrong)
