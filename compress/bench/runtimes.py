"""The catalog of runtimes: every implementation imported (so each registers its records), and the questions asked
of the set, all answered from the records (:class:`compress.bench.registry.Runtime`): which can run here, which
``compress bench`` runs by default, which the study's latency column picks among, and a prepared model for one.

A runtime added with :func:`compress.bench.register_runtime` is part of every answer like the built-in ones.
"""

from __future__ import annotations

import inspect
import re
from typing import Callable, Sequence

import torch
from torch import nn

# The implementations: importing one registers its runtimes, in this order (the order of the tables).
import compress.bench.torch_runtimes  # noqa: F401  # isort: skip
import compress.bench.ort  # noqa: F401  # isort: skip
import compress.bench.int8  # noqa: F401  # isort: skip
import compress.bench.openvino  # noqa: F401  # isort: skip
import compress.bench.cuda_graph  # noqa: F401  # isort: skip
from compress.bench.registry import Runner, get_runtime, registered_runtimes
from compress.data import DataBundle, Normalizer, Split, model_inputs
from compress.device import resolve_device
from compress.int8.config import Int8Config
from compress.onnx import check_input_shape

__all__ = ["available_runtimes", "check_runtime", "runtime_factory", "make_runner", "call_factory", "runtime_names",
           "default_runtimes", "float_runtimes", "calibration_inputs"]


def runtime_factory(runtime: str, device: str) -> Callable[..., Runner]:
    """The factory of ``runtime`` on ``device`` ("cpu" or "cuda"); ValueError if it cannot run here (unknown
    runtime, another device, a package it needs missing, or its record's own check)."""
    record = get_runtime(runtime)
    record.require(device)
    return record.factory


def check_runtime(runtime: str, device: str = "cpu") -> None:
    """Raise ``ValueError`` unless ``runtime`` can run here on ``device`` (unknown runtime or device, CUDA
    not available, a package it needs not installed, onnxruntime without its CUDA provider...)."""
    runtime_factory(runtime, resolve_device(device).type)


def available_runtimes(device: str = "cpu") -> list[str]:
    """The registered runtimes that can run here on ``device``, in registration order: none on CUDA without CUDA.
    Raises ValueError for a name that is no device."""
    if re.fullmatch(r"cuda(:\d+)?", str(device)) and not torch.cuda.is_available():
        return []
    device = resolve_device(device).type
    out = []
    for record in registered_runtimes():
        try:
            record.require(device)
        except ValueError:
            continue
        out.append(record.name)
    return out


def runtime_names(*, kind: str | None = None) -> list[str]:
    """Every registered runtime's name (of ``kind``: float, half or int8, when given), installed here or not."""
    return [r.name for r in registered_runtimes(kind=kind)]


def default_runtimes(device: str = "cpu", *, int8: bool = True) -> list[str]:
    """What ``compress bench`` runs without ``--runtimes``: the available runtimes whose record says ``default``,
    the int8 ones only when ``int8`` (the target has an int8 execution path)."""
    return [name for name in available_runtimes(device)
            if get_runtime(name).default and (int8 or get_runtime(name).kind != "int8")]


def float_runtimes(device: str = "cpu") -> list[str]:
    """The default runtimes available here that run the model's own float32 numbers (kind ``float``): what
    :func:`compress.bench.fastest_latency` picks among, since the study's accuracy column is the float model's."""
    return [name for name in default_runtimes(device, int8=False) if get_runtime(name).kind == "float"]


def calibration_inputs(data: DataBundle | Split | None, shape: Sequence[int], *,
                       normalizer: Normalizer | None = None) -> torch.Tensor | None:
    """Model inputs to calibrate int8 runtimes on and check outputs on: ``Int8Config().calibration_images`` images
    of ``data``'s training split (a ``DataBundle``, or the ``Split`` given) drawn with seed 0, through
    ``normalizer`` (:func:`compress.data.model_inputs`); None without data. Raises ValueError when the images are
    not of ``shape``."""
    if data is None:
        return None
    images = model_inputs(data, Int8Config().calibration_images, normalizer=normalizer, split="train", seed=0)
    if tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"data: images have shape {tuple(images.shape[1:])}, the model takes "
                         f"{'x'.join(map(str, shape))}")
    return images.float().cpu()


def make_runner(model: nn.Module, input_shape: Sequence[int], *, runtime: str = "eager", device: str = "cpu",
                threads: int = 1, dtype: torch.dtype = torch.float32, weights=None,
                data: DataBundle | Split | None = None, normalizer: Normalizer | None = None) -> Runner:
    """The :class:`Runner` that :func:`compress.bench.measure` times, for timing several runtimes side by side in one
    process (``benchmarks/latency_ratio.py``). ``model`` must already be in eval mode on ``device`` in ``dtype``;
    torch's thread count is the caller's to set, ``threads`` goes to ONNX Runtime. ``weights`` (an int8 artifact's,
    :func:`compress.int8.int8_weights`) and ``data`` + ``normalizer`` (calibration, :func:`calibration_inputs`) go
    to the int8 runtimes. Outputs are not checked here: compare ``output(call())`` with eager yourself. Raises
    ``ValueError`` like :func:`compress.bench.measure`."""
    device = resolve_device(device).type
    shape = check_input_shape(input_shape)
    factory = runtime_factory(runtime, device)
    return call_factory(factory, model, shape, dtype=dtype, device=device, threads=threads, weights=weights,
                        calibration=calibration_inputs(data, shape, normalizer=normalizer))


def call_factory(factory: Callable[..., Runner], model: nn.Module, shape: tuple[int, ...], *, dtype, device,
                 threads, **context) -> Runner:
    """``factory(model, shape, dtype=, device=, threads=)`` plus those ``context`` entries (``weights``,
    ``calibration``) that are not None and that the factory declares (or takes as ``**kwargs``)."""
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in context.items() if v is not None and (k in params or takes_all)}
    return factory(model, shape, dtype=dtype, device=device, threads=threads, **extra)
