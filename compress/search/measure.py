"""Measuring a candidate for real: its file's bytes, the model it reloads to (params, MACs), its accuracy on the
validation split (with which images it got right, for paired comparisons) and on the test split, and its latency on
each runtime that can execute it, outputs checked against eager (:func:`compress.bench.measure`).

The data is a bundle in memory or streamed :class:`~compress.data.torch_data.TorchData`: a streamed split is scored
batch by batch in its fixed order (a Dataset's index order, a DataLoader's as it yields), so the per-image
correctness of every candidate lines up image for image, and only that vector (one bool per image) is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from compress.evidence import wilson
from compress.search.candidates import Candidate

__all__ = ["score", "latencies", "runtimes_for", "overhead_ms", "calibration_data"]


def _correct(model, split, normalizer, batch_size: int) -> torch.Tensor:
    """Whether ``model`` gets each image of ``split`` right (bool, one per image, in the split's order): a split in
    memory at once, a streamed one ``batch_size`` images at a time (its own batches for a DataLoader)."""
    from compress.data.torch_data import StreamSplit
    from compress.train.inference import predict

    if isinstance(split, StreamSplit):
        parts = [predict(model, x, normalizer, batch_size=batch_size) == y for x, y in split.batches(batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)
    return predict(model, split.x, normalizer) == split.y


def score(candidate: Candidate, path: Path, bundle, normalizer, input_shape: Sequence[int], *,
          batch_size: int = 1024) -> Candidate:
    """Fill ``candidate``'s bytes, params, MACs and accuracies from the artifact at ``path`` as reloaded.
    ``bundle``: a DataBundle or streamed TorchData; ``batch_size``: images per batch read from a stream."""
    from compress.budget import mac_count, param_count
    from compress.export.artifact import load

    t0 = time.perf_counter()
    candidate.size_bytes = os.path.getsize(path)
    model = load(path).eval()
    candidate.param_count = param_count(model)
    candidate.macs = mac_count(model, tuple(input_shape))
    val = _correct(model, bundle.val, normalizer, batch_size)
    candidate.val_n = len(val)
    candidate.val_acc = float(val.float().mean())
    candidate.val_low, candidate.val_high = wilson(candidate.val_acc, len(val))
    candidate.set_correct(val.numpy())
    if bundle.test is not None and len(bundle.test) and bundle.test.labeled:
        test = _correct(model, bundle.test, normalizer, batch_size)
        candidate.test_acc, candidate.test_n = float(test.float().mean()), len(test)
    candidate.seconds += time.perf_counter() - t0
    return candidate


def runtimes_for(codec: str, runtimes: Sequence[str]) -> list[str]:
    """The runtimes of ``runtimes`` that can execute an artifact stored with ``codec``: every float runtime, and
    the int8 runtimes for whole-model int8 codecs (their stored values are what they run)."""
    from compress.bench.registry import get_runtime
    from compress.int8 import INT8_CODECS

    int8 = codec != "deep" and codec.split("+")[0] in INT8_CODECS
    return [r for r in runtimes if get_runtime(r).kind == "float" or (get_runtime(r).kind == "int8" and int8)]


def latencies(path: Path, codec: str, runtimes: Sequence[str], input_shape: Sequence[int], *, batch_size: int,
              threads: int, warmup: int, repeats: int, bundle, normalizer) -> dict[str, Any]:
    """``{runtime: median ms | "error text"}`` for the artifact at ``path`` on each runtime that can run it.
    ``bundle`` and ``normalizer`` go to :func:`compress.bench.measure` as ``data=``/``normalizer=`` (int8
    calibration, output checks): a bundle, or what :func:`calibration_data` made of streamed data."""
    from compress.bench import measure

    out: dict[str, Any] = {}
    for runtime in runtimes_for(codec, runtimes):
        try:
            (record,) = measure(path, tuple(input_shape), runtime=runtime, batch_sizes=(batch_size,),
                                threads=threads, warmup=warmup, repeats=repeats, data=bundle, normalizer=normalizer)
        except ValueError as exc:
            out[runtime] = str(exc)
            continue
        out[runtime] = record.median_ms if record.error is None else str(record.error)
    return out


def calibration_data(data, normalizer) -> tuple[Any, Any]:
    """``(data, normalizer)`` for :func:`compress.bench.measure`'s int8 calibration and output checks: a bundle as it
    is; streamed :class:`~compress.data.torch_data.TorchData` read once here (``Int8Config().calibration_images``
    training images, drawn with seed 0 as :meth:`TorchData.model_inputs` draws them, so the images a bundle of the
    same data would give), held as a :class:`~compress.data.bundle.Split` of model inputs with the identity
    normalizer: every artifact and runtime calibrates on them without reading the stream again, and the memory
    held is that of the calibration inputs ``measure`` makes anyway."""
    from compress.data.bundle import Normalizer, Split
    from compress.data.torch_data import TorchData
    from compress.int8 import Int8Config

    if not isinstance(data, TorchData):
        return data, normalizer
    inputs = data.model_inputs(Int8Config().calibration_images, normalizer=normalizer, split="train", seed=0)
    return Split(inputs, torch.zeros(len(inputs), dtype=torch.long)), Normalizer((), ())


def overhead_ms(runtimes: Sequence[str], input_shape: Sequence[int], num_classes: int, *, batch_size: int,
                threads: int) -> dict[str, float]:
    """Per-call time of the smallest useful model (one linear layer on the flattened image) on each float runtime:
    the floor under any latency a model of this input can reach there."""
    from torch import nn

    from compress.bench import measure
    from compress.bench.registry import get_runtime

    c, h, w = input_shape
    tiny = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes)).eval()
    out: dict[str, float] = {}
    for runtime in runtimes:
        if get_runtime(runtime).kind != "float":
            continue
        (record,) = measure(tiny, tuple(input_shape), runtime=runtime, batch_sizes=(batch_size,), threads=threads,
                            warmup=5, repeats=30)
        if record.error is None and record.median_ms is not None:   # a record without an error has its median
            out[runtime] = record.median_ms
    return out
