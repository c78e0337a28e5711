"""Latency on CPU and CUDA across runtimes.

Rooms: ``latency`` (``measure``, ``LatencyRecord``, timing rules), ``runtimes`` (eager, folded, channels_last,
compile, onnxruntime, each a ``Runner``), ``cuda_graph`` (cuda_graph, cuda_graph_fp16/bf16), ``int8`` (onnxruntime_int8,
torch_int8) and ``fastest`` (the fastest runtime that passed its output check).
"""

from compress.bench.fastest import FLOAT_RUNTIMES, fastest, fastest_latency, fastest_summary
from compress.bench.latency import LatencyRecord, format_table, measure, summarize_times, time_calls
from compress.bench.runtimes import (INT8_RUNTIMES, RUNTIMES, OutputMismatchError, Runner, available_runtimes,
                                     check_runtime, make_runner, register_runtime)

__all__ = ["measure", "LatencyRecord", "format_table", "time_calls", "summarize_times", "RUNTIMES", "INT8_RUNTIMES",
           "Runner", "make_runner", "check_runtime", "available_runtimes", "OutputMismatchError", "register_runtime",
           "fastest", "fastest_summary", "fastest_latency", "FLOAT_RUNTIMES"]
