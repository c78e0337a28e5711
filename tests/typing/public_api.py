"""The public API as a user's code sees it, checked by mypy (``mypy`` in the repository root lists this file;
``tests/test_types.py`` runs it). Never executed: pytest collects only ``test_*.py`` files, and every call sits in a
function nobody calls, so nothing trains or reads data.

The entry points of ``compress/__init__.py`` are called by the names a user types first (``compress.create``: the
lazy ``__getattr__`` is typed by the module's ``TYPE_CHECKING`` imports), the subpackages' verbs as
``compress.prune.prune``, ``compress.profile.profile``, ``compress.search.search``; ``assert_type`` on what each
returns, so a signature that loses its types (an ``Any``, a missing return annotation) fails here.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from typing_extensions import assert_type   # typing.assert_type is Python 3.11+; compress supports 3.10

import compress
import compress.profile
import compress.prune
import compress.search
from compress.bench import LatencyResult
from compress.budget import Budget
from compress.data import DataBundle, Split
from compress.models import ModelCard
from compress.profile import Profile
from compress.prune import PruneResult
from compress.quant import CodecConfig, Quantized
from compress.search import SearchConfig, SearchResult
from compress.train import Run, TrainConfig


def tour() -> None:
    """The README's tour: create, fit, save, load, prune, profile, quantize, measure."""
    model = compress.create("mobilenet_v1", width_mult=0.5)
    assert_type(model, nn.Module)
    assert_type(compress.list_models(), list[str])
    card = compress.card_of(model)
    assert_type(card, "ModelCard | None")
    if card is not None:
        assert_type(compress.rebuild(card), nn.Module)
        assert_type(card.input_shape, tuple[int, int, int])

    data = compress.load_data("default")
    assert_type(data, DataBundle)
    assert_type(data.split("val"), Split)

    config = compress.TrainConfig(epochs=3)
    assert_type(config, TrainConfig)
    run = compress.fit(model, data, config)
    assert_type(run, Run)
    assert_type(run.model, nn.Module)
    assert_type(compress.evaluate(run.model, data), dict)
    assert_type(compress.load_run("runs/mbv1"), Run)

    path = compress.save(run.model, "model.npz", codec="int8", fold_bn=True)
    assert_type(path, Path)
    assert_type(compress.load("model.npz"), nn.Module)

    pruned = compress.prune.prune(run.model, budget=compress.Budget(max_params=20_000))
    assert_type(pruned, PruneResult)
    assert_type(pruned.model, nn.Module)

    counts = compress.profile.profile(pruned.model, (1, 48, 48))
    assert_type(counts, Profile)
    assert_type(counts.macs, int)
    assert_type(counts.param_count, int)

    stored = compress.quantize(run.model, CodecConfig("int8", fold_bn=True))
    assert_type(stored, Quantized)
    assert_type(stored.model, nn.Module)

    timed = compress.measure_latency(run.model, (1, 48, 48), runtime="eager")
    assert_type(timed, LatencyResult)
    assert_type(timed[0].median_ms, "float | None")


def joint_search() -> None:
    """``compress.search.search``: a run folder, a byte and latency budget, an output folder."""
    budget = compress.Budget(max_bytes=225_000, max_latency_ms=2.0)
    assert_type(budget, Budget)
    assert_type(budget.limits, dict[str, float])
    assert_type(compress.ModelCard, type[ModelCard])
    result = compress.search.search("runs/mbv1", budget, SearchConfig(), out="search/mbv1")
    assert_type(result, SearchResult)


def own_model() -> None:
    """Any ``nn.Module`` goes where a compress model does."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(7))
    assert_type(compress.profile.profile(model, (1, 28, 28)), Profile)
    assert_type(compress.save(model, "own.npz", input_shape=(1, 28, 28)), Path)
    assert_type(compress.prune.prune(model, input_shape=(1, 28, 28), ratio=0.5).model, nn.Module)
    assert_type(compress.load("own.npz", model=model), nn.Module)
