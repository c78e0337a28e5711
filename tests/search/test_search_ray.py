"""compress.search on a real local Ray: the models train on Ray workers, their folders come back to the driver."""

import logging
import os

import pytest
import torch

from compress.budget import Budget
from compress.search import SearchConfig, search


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    environ = dict(os.environ)
    ray.init(address="local", num_cpus=1, object_store_memory=100 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
    os.environ.clear()   # ray.init sets RAY_AUTH_MODE and others for good; later tests' subprocesses need not
    os.environ.update(environ)


def test_search_on_ray_writes_the_models_on_the_driver(local_ray, tmp_path):
    from compress import data, models, train
    from compress.study import RayExecutor

    bundle = data.load("synthetic:n=200,classes=3,size=16")
    torch.manual_seed(0)
    run_dir = tmp_path / "cnn"
    train.fit(models.create("cnn", width_mult=0.25, num_classes=3, input_size=16), bundle,
              train.TrainConfig(epochs=1, augment=False), out=run_dir, progress=False)
    config = SearchConfig(importances=("l1",), scopes=("uniform",), storage=("int8+fold",), codecs=("int8+fold",),
                          finetune_epochs=0.5, deep=True, deep_prune_epochs=0.5, deep_finetune_epochs=0.25,
                          baselines=False, runtimes=("eager",), latency_repeats=3)
    result = search(run_dir, Budget(max_bytes=30_000), config, out=tmp_path / "s", executor=RayExecutor())
    models_dir = tmp_path / "s" / "models"
    assert (models_dir / "prune-l1-uniform-int8" / "checkpoint.pt").is_file()
    assert (models_dir / "deep-pruned" / "artifact.npz").is_file()     # the second wave, its parent shipped
    assert {"prune-l1-uniform-int8~int8+fold", "deep-pruned~deep"} <= {c.id for c in result.candidates}
    assert all(c.error is None for c in result.candidates)
