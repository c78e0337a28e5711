"""Latency on CPU and CUDA across runtimes; runtimes are records, registered by the module that implements them.

Rooms:
    registry        the leaf: ``Runtime`` (name, factory, devices, needs, kind, default, check), ``Runner``,
                    ``register_runtime``/``unregister_runtime``/``get_runtime``, tolerances, ``OutputMismatchError``
    runtimes        the catalog: imports every implementation and answers from the records:
                    ``available_runtimes``, ``default_runtimes``, ``float_runtimes``, ``runtime_names``,
                    ``check_runtime``, ``make_runner``
    torch_runtimes  eager, folded, channels_last, compile (``torch_runner``)
    ort             onnxruntime (``ort_runner``)
    cuda_graph      cuda_graph, cuda_graph_fp16, cuda_graph_bf16 (CUDA)
    int8            onnxruntime_int8, torch_int8 (CPU; the pieces are :mod:`compress.int8`'s)
    openvino        openvino, openvino_int8 (optional extra ``compress[openvino]``)
    records         ``LatencyRecord``, ``LatencyResult`` (``.table()``, ``.fastest()``, ``.to_dict()``),
                    ``format_table``, ``fastest``, ``fastest_summary``
    latency         ``measure`` (timing rules), ``latency_ms`` (the one number a budget limits)
    fastest         ``fastest_latency``: the fastest float runtime, the study's latency column

Add a runtime with ``register_runtime(Runtime(name, factory, devices=..., kind=..., default=...))`` (or the short
``register_runtime(name, factory)``: CPU, float, default): it is then available, in ``compress bench``'s default
set and a candidate for the fastest, like the built-in ones.
"""

from compress.bench.fastest import fastest_latency
from compress.bench.latency import LATENCY_REPEATS, LATENCY_WARMUP, latency_ms, measure, summarize_times, time_calls
from compress.bench.records import LatencyRecord, LatencyResult, fastest, fastest_summary, format_table
from compress.bench.registry import (INT8_TOLERANCE, OutputMismatchError, Runner, Runtime, get_runtime,
                                     register_runtime, registered_runtimes, tolerance, unregister_runtime)
from compress.bench.runtimes import (available_runtimes, check_runtime, default_runtimes, float_runtimes,
                                     make_runner, runtime_names)

__all__ = ["measure", "latency_ms", "LATENCY_WARMUP", "LATENCY_REPEATS", "LatencyRecord", "LatencyResult",
           "format_table", "time_calls", "summarize_times", "Runtime", "Runner", "register_runtime",
           "unregister_runtime", "get_runtime", "registered_runtimes", "available_runtimes", "default_runtimes",
           "float_runtimes", "runtime_names", "check_runtime", "make_runner", "OutputMismatchError", "tolerance",
           "INT8_TOLERANCE", "fastest", "fastest_summary", "fastest_latency"]

