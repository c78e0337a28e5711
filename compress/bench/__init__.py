"""Latency on CPU and CUDA across runtimes.

Rooms: ``latency`` (``measure``, ``LatencyRecord``, timing rules) and ``runtimes`` (eager, folded, channels_last,
compile, onnxruntime, cuda_graph, each a ``Runner``).
"""

from compress.bench.latency import LatencyRecord, format_table, measure, summarize_times, time_calls
from compress.bench.runtimes import (RUNTIMES, OutputMismatchError, Runner, available_runtimes, check_runtime,
                                     make_runner, register_runtime)

__all__ = ["measure", "LatencyRecord", "format_table", "time_calls", "summarize_times", "RUNTIMES", "Runner", "make_runner",
           "check_runtime", "available_runtimes", "OutputMismatchError", "register_runtime"]
