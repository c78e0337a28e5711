"""compress: model-compression research for small image classifiers.

One capability per subpackage, layers pointing down this list: ``blocks`` (the layers), ``budget`` (one Budget,
one measure per quantity, one bisection), ``models`` (architectures, registry, model cards, BatchNorm folding,
scaling to a budget), ``data``, ``profile`` (exact counts), ``train`` (one training loop), ``quant`` (storage
codecs, per-layer plans, trained quantization, Deep Compression: one verb ``quantize``), ``prune`` (structured and
unstructured), ``onnx`` and ``int8`` (ONNX files; int8 execution: calibration, QDQ graphs, checks), ``export``
(artifacts, byte budgets), ``bench`` (runtimes as records, latency), ``explain``, ``study`` (sweeps, statistics,
figures, reports) and the ``compress`` command in ``cli``. ``DEVELOPERS.md`` has the module map.

The entry points a user types first are here too, imported on first use (``import compress`` itself loads nothing
beyond this file)::

    model = compress.create("mobilenet_v1", width_mult=0.5)
    run = compress.fit(model, compress.load_data("default"), compress.TrainConfig(epochs=3))
    compress.save(run.model, "model.npz", codec="int8", fold_bn=True)
    same = compress.load("model.npz")
    small = compress.prune.prune(run.model, budget=compress.Budget(max_params=20_000)).model

The counting and pruning functions live in their packages, ``compress.profile.profile(model, input_shape)`` and
``compress.prune.prune(model, ...)``: a top-level ``profile`` or ``prune`` would be shadowed by the subpackage of
that name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_ENTRY_POINTS = {
    "create": ("compress.models", "create"),
    "list_models": ("compress.models", "list_models"),
    "ModelCard": ("compress.models", "ModelCard"),
    "card_of": ("compress.models", "card_of"),
    "rebuild": ("compress.models", "rebuild"),
    "Budget": ("compress.budget", "Budget"),
    "load_data": ("compress.data", "load"),
    "TorchData": ("compress.data", "TorchData"),
    "ImageFolderDataset": ("compress.data", "ImageFolderDataset"),
    "TrainConfig": ("compress.train", "TrainConfig"),
    "fit": ("compress.train", "fit"),
    "evaluate": ("compress.train", "evaluate"),
    "load_run": ("compress.train", "load_run"),
    "save": ("compress.export", "save"),
    "load": ("compress.export", "load"),
    "quantize": ("compress.quant", "quantize"),
    "measure_latency": ("compress.bench", "measure"),
}

__all__ = ["__version__", *_ENTRY_POINTS]

if TYPE_CHECKING:   # what a type checker sees of the entry points __getattr__ imports on first use
    from compress.bench import measure as measure_latency
    from compress.budget import Budget
    from compress.data import ImageFolderDataset, TorchData
    from compress.data import load as load_data
    from compress.export import load, save
    from compress.models import ModelCard, card_of, create, list_models, rebuild
    from compress.quant import quantize
    from compress.train import TrainConfig, evaluate, fit, load_run


def __getattr__(name: str) -> Any:
    if name in _ENTRY_POINTS:
        module, attr = _ENTRY_POINTS[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'compress' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ENTRY_POINTS))
