"""The PyTorch runtimes: ``eager``, ``folded`` (BatchNorm folded into convolutions), ``channels_last`` (weights and
input in NHWC) and ``compile`` (``torch.compile``; not in the default set: code generation takes about a minute per
batch size on CPU). They run on CPU and CUDA; :func:`torch_runner` is the runner the other torch-based runtimes
(``cuda_graph``, ``torch_int8``) build on."""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn

from compress.bench.registry import Runner, Runtime, register_runtime
from compress.models.fold import fold_batchnorm

__all__ = ["torch_runner", "folded_copy"]


def torch_runner(model: nn.Module, *, memory_format=None, grad_mode=torch.inference_mode, notes=None) -> Runner:
    """A runner calling ``model`` under ``grad_mode``, the input in ``memory_format`` when given."""
    def prepare(x):
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)

        def call():
            with grad_mode():
                return model(x)

        return call, lambda y: y

    return Runner(prepare, notes, model)


def folded_copy(model: nn.Module) -> nn.Module:
    """BatchNorm folded into convolutions by the one implementation, ``compress.models.fold_batchnorm``: a folded
    copy in eval mode; ``model`` is left as it was."""
    return fold_batchnorm(model).eval()


def _eager(model, shape, **_) -> Runner:
    return torch_runner(model)


def _folded(model, shape, **_) -> Runner:
    return torch_runner(folded_copy(model), notes=["BatchNorm folded into convolutions"])


def _channels_last(model, shape, **_) -> Runner:
    model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return torch_runner(model, memory_format=torch.channels_last, notes=["weights and input in channels_last"])


def _compile(model, shape, **_) -> Runner:
    # A fresh dynamo cache per model: after its recompile limit dynamo silently runs eager, which
    # would time eager under the name "compile" in a sweep over many models.
    torch._dynamo.reset()
    compiled = cast(nn.Module, torch.compile(model))   # a module compiles to an OptimizedModule; the stub says Callable
    return torch_runner(compiled, grad_mode=torch.no_grad,
                        notes=[f"torch.compile (inductor), torch {torch.__version__}"])


for _record in (Runtime("eager", _eager, devices=("cpu", "cuda")),
                Runtime("folded", _folded, devices=("cpu", "cuda")),
                Runtime("channels_last", _channels_last, devices=("cpu", "cuda")),
                Runtime("compile", _compile, devices=("cpu", "cuda"), default=False)):
    register_runtime(_record)
