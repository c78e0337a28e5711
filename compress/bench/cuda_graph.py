"""The ``cuda_graph`` runtimes: a folded model captured once per batch size as a CUDA graph and replayed, in
float32 or (``cuda_graph_fp16``, ``cuda_graph_bf16``) in half precision. Small models on a GPU are bound by
kernel-launch overhead, which replaying a graph removes."""

from __future__ import annotations

import torch
from torch import nn

from compress.bench.runtimes import Runner, tolerance

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
