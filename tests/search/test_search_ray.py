"""compress.search on a real local Ray: the models train on Ray workers, their folders come back to the driver."""

from compress.budget import Budget
from compress.search import SearchConfig, search


def test_search_on_ray_writes_the_models_on_the_driver(local_ray, tiny_run, tmp_path):
    from compress.study import RayExecutor

    run_dir = tiny_run(images=300, epochs=2)   # the suite's small CNN (tests/conftest.py)
    config = SearchConfig(importances=("l1",), scopes=("uniform",), storage=("int8+fold",), codecs=("int8+fold",),
                          finetune_epochs=0.5, deep=True, deep_prune_epochs=0.5, deep_finetune_epochs=0.25,
                          baselines=False, runtimes=("eager",), latency_repeats=3)
    result = search(run_dir, Budget(max_bytes=6_000), config, out=tmp_path / "s", executor=RayExecutor())
    models_dir = tmp_path / "s" / "models"
    assert (models_dir / "prune-l1-uniform-int8" / "checkpoint.pt").is_file()
    assert (models_dir / "deep-pruned" / "artifact.npz").is_file()     # the second wave, its parent shipped
    assert {"prune-l1-uniform-int8~int8+fold", "deep-pruned~deep"} <= {c.id for c in result.candidates}
    assert all(c.error is None for c in result.candidates)
