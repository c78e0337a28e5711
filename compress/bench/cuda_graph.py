"""The ``cuda_graph`` runtimes (CUDA only): a folded model captured once per batch size as a CUDA graph and replayed,
in float32 or (``cuda_graph_fp16``, ``cuda_graph_bf16``: bf16 where the GPU has it) in half precision, the input
cast in and the logits cast back inside the graph, checked against float32 eager at the half dtype's tolerance.
Small models on a GPU are bound by kernel-launch overhead, which replaying a graph removes."""

from __future__ import annotations

import torch
from torch import nn

from compress.bench.registry import Runner, Runtime, register_runtime, tolerance
from compress.bench.torch_runtimes import folded_copy

__all__ = ["cuda_graph_runner"]


def cuda_graph_runner(folded: nn.Module, half: torch.dtype | None) -> Runner:
    """``folded`` captured as a CUDA graph per batch; with ``half`` (float16, bfloat16) the weights are in that
    dtype and the graph casts the input in and the logits back to the input's dtype."""
    def forward(x):
        return folded(x) if half is None else folded(x.to(half)).to(x.dtype)

    def prepare(x):
        static_in = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():  # warm-up off the capture stream, as capture requires
            for _ in range(3):
                forward(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = forward(static_in)

        def call():
            static_in.copy_(x)
            graph.replay()
            return static_out

        return call, lambda y: y.clone()

    note = "BatchNorm folded, captured as a CUDA graph, input copied in and graph replayed per call"
    if half is not None:
        name = str(half).removeprefix("torch.")
        note += f"; weights and activations in {name}, input cast in and logits cast back inside the graph"
    return Runner(prepare, [note], folded, tolerance=tolerance(half) if half is not None else None)


def _cuda_graph(model, shape, **_) -> Runner:
    return cuda_graph_runner(folded_copy(model), None)


def _cuda_graph_half(half: torch.dtype):
    def factory(model, shape, **_) -> Runner:
        return cuda_graph_runner(folded_copy(model).to(half), half)
    return factory


def _bf16_supported(device: str) -> None:
    if not torch.cuda.is_bf16_supported():
        raise ValueError(f"runtime 'cuda_graph_bf16' needs a GPU with bfloat16 ({torch.cuda.get_device_name()} has none)")


for _record in (Runtime("cuda_graph", _cuda_graph, devices=("cuda",)),
                Runtime("cuda_graph_fp16", _cuda_graph_half(torch.float16), devices=("cuda",), kind="half"),
                Runtime("cuda_graph_bf16", _cuda_graph_half(torch.bfloat16), devices=("cuda",), kind="half",
                        check=_bf16_supported)):
    register_runtime(_record)
