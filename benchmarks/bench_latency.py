"""pytest-benchmark suites: inference latency per model family, width and runtime, on CPU and CUDA.

    pytest benchmarks/bench_latency.py                                   # CPU cases; CUDA cases skip without a GPU
    pytest benchmarks/bench_latency.py -k "cuda"                         # only the GPU cases
    pytest benchmarks/bench_latency.py --benchmark-json out.json         # keep the figures
    COMPRESS_BENCH_BATCH=1,32 COMPRESS_BENCH_COMPILE=1 pytest benchmarks/bench_latency.py

Each case builds ``compress.models.create(family, width_mult=width)`` for FER input (1x48x48), prepares it with
``compress.bench.make_runner`` (the code ``compress bench`` times), checks its outputs against eager, and
times one batch per call: CPU cases with torch and ONNX Runtime on 1 thread (restored afterwards), CUDA cases
synchronized after every call. ``extra_info`` carries params, batch, threads, device name and runtime notes.
``torch.compile`` cases (a minute each to compile on a small CPU) run only with ``COMPRESS_BENCH_COMPILE=1``.
"""

from __future__ import annotations

import os

import pytest
import torch

from compress import bench as latency
from compress import models
from compress.device import device_name

FAMILIES = ("mobilenet_v1", "mobilenet_v2", "cnn", "mlp")
WIDTHS = (0.25, 0.5, 1.0)
INPUT_SHAPE = (1, 48, 48)
BATCHES = tuple(int(b) for b in os.environ.get("COMPRESS_BENCH_BATCH", "1").split(","))
CPU_RUNTIMES = ("eager", "folded", "channels_last", "onnxruntime")
CUDA_RUNTIMES = ("eager", "folded", "channels_last", "cuda_graph", "cuda_graph_fp16", "cuda_graph_bf16")
if os.environ.get("COMPRESS_BENCH_COMPILE") == "1":
    CPU_RUNTIMES += ("compile",)
    CUDA_RUNTIMES += ("compile",)
CPU_THREADS = 1


@pytest.fixture
def cpu_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    yield CPU_THREADS
    torch.set_num_threads(before)


def _model(family: str, width: float, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.create(family, width_mult=width, input_size=INPUT_SHAPE[1], in_chans=INPUT_SHAPE[0])
    with torch.no_grad():  # BatchNorm statistics as after training, so folding really changes the weights
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval().to(device)


def _bench(benchmark, family, width, runtime, batch, device, threads):
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime")
    if runtime == "cuda_graph_bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    model = _model(family, width, device)
    runner = latency.make_runner(model, INPUT_SHAPE, runtime=runtime, device=device, threads=threads)
    x = torch.randn(batch, *INPUT_SHAPE, device=device)
    call, output = runner(x)
    with torch.inference_mode():
        want = model(x).float().cpu()
    got = output(call()).float().cpu()  # also the compile step for runtime "compile"
    tol = runner.tolerance or {"rtol": 1e-3, "atol": 1e-4}   # half-precision runtimes: their dtype's tolerance
    torch.testing.assert_close(got, want, rtol=tol["rtol"], atol=tol["atol"] + tol["rtol"] * want.abs().max().item())

    if device == "cuda":
        def timed():
            call()
            torch.cuda.synchronize()
    else:
        timed = call
    benchmark.extra_info.update(
        family=family, width_mult=width, runtime=runtime, batch_size=batch, device=device,
        device_name=device_name(device), threads=threads, input_shape=list(INPUT_SHAPE),
        param_count=sum(p.numel() for p in model.parameters()), notes=runner.notes)
    benchmark.pedantic(timed, warmup_rounds=10, rounds=100 if batch <= 8 else 20, iterations=1)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("runtime", CPU_RUNTIMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("family", FAMILIES)
def test_cpu(benchmark, cpu_threads, family, width, runtime, batch):
    benchmark.group = f"cpu {family} batch {batch}"
    _bench(benchmark, family, width, runtime, batch, "cpu", cpu_threads)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("batch", sorted(set(BATCHES) | {256}))
@pytest.mark.parametrize("runtime", CUDA_RUNTIMES)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda(benchmark, family, width, runtime, batch):
    benchmark.group = f"cuda {family} batch {batch}"
    _bench(benchmark, family, width, runtime, batch, "cuda", torch.get_num_threads())
