"""The latency target, both sides measured in one run.

Target (issue 6): for the FER-sized MobileNet of about 100K parameters at batch 1 on 1 CPU thread, the
fastest runtime compress offers is at least 5x faster than eager PyTorch and no slower than ONNX Runtime
running a plain export of the same model.

    python benchmarks/latency_ratio.py                      # CPU, fer_hw8_torch (107K params), batch 1, 1 thread
    python benchmarks/latency_ratio.py --device cuda        # the same sides on a GPU (ORT only with its CUDA provider)
    python benchmarks/latency_ratio.py --compile --json out.json

Sides: ``eager`` PyTorch; every runtime in ``compress.bench`` (``compile`` only with ``--compile``: it
takes about a minute on a small CPU); and ``plain_ort``, the reference, written here directly against
onnxruntime so that it owes nothing to compress: the model exported by ``torch.onnx.export`` with torch's
default exporter and settings (no BatchNorm folding of ours), and an ``InferenceSession`` with default options
except the thread counts (intra_op = ``--threads``, inter_op 1; both libraries' thread counts are always
set), called the usual way, ``session.run(None, {name: array})``.

Method: torch's thread count is fixed for the whole run; every side has ``--sessions`` independent instances
(identical ORT sessions differ by several percent), each checked against eager; then ``--rounds`` rounds,
each running every instance (in a rotated order) for ``--warmup`` untimed and ``--calls``
timed calls, each call timed on its own (perf_counter on CPU, CUDA events + synchronize on CUDA). The
interleaving spreads slow phases of a shared machine over all sides. Reported per side: median, IQR and
p95 of all its instances' timed calls, and each instance's median; ratios are medians. The load average
before and after is printed, because on a shared machine it matters.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

import torch
from torch import nn

from compress import _io
from compress import bench as latency
from compress import models
from compress.device import device_name as cpu_or_gpu_name
from compress.device import resolve_device


def fer_mobilenet(name: str = "fer_hw8_torch", width_mult: float = 1.0, input_shape=(1, 48, 48)) -> nn.Module:
    """The model of the target (seed 001's 107K-parameter FER MobileNet by default), in eval mode, with
    BatchNorm statistics set to typical trained values so that folding and export are really exercised."""
    torch.manual_seed(0)
    model = models.create(name, width_mult=width_mult, in_chans=input_shape[0], input_size=input_shape[1])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def plain_ort_side(model: nn.Module, x: torch.Tensor, threads: int, device: str):
    """(call, output, notes) for ONNX Runtime on a plain export: torch's default exporter, default session."""
    import onnxruntime as ort

    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        raise ValueError(f"onnxruntime has no {provider}")
    folder = tempfile.mkdtemp(prefix="plain-ort-")
    path = os.path.join(folder, "plain.onnx")
    cpu_model, x_cpu = _cpu_float(model), x.detach().float().cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(cpu_model, (x_cpu,), path)  # torch's default exporter and options
            exporter = "torch.onnx.export defaults"
        except Exception as exc:  # e.g. onnxscript missing for the dynamo exporter
            torch.onnx.export(cpu_model, (x_cpu,), path, dynamo=False)
            exporter = f"torch.onnx.export(dynamo=False) (default failed: {type(exc).__name__})"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=[provider])
    name = session.get_inputs()[0].name
    x_np = x_cpu.numpy()
    notes = [f"onnxruntime {ort.__version__} {provider}, {exporter}, default session options, "
             f"intra_op {threads}, inter_op 1, session.run"]
    return (lambda: session.run(None, {name: x_np})), (lambda out: torch.from_numpy(out[0])), notes


def _cpu_float(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).float().cpu().eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="fer_hw8_torch", help="compress.models name (default fer_hw8_torch)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1.0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and ONNX Runtime (default 1)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--calls", type=int, default=200, help="timed calls per side per round (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per side per round (default 20)")
    p.add_argument("--sessions", type=int, default=3,
                   help="independent instances per side (fresh export, session or model copy; default 3)")
    p.add_argument("--compile", action="store_true", help="include torch.compile (slow to compile)")
    p.add_argument("--json", metavar="PATH", help="write the results here")
    args = p.parse_args(argv)

    try:
        resolve_device(args.device)
    except ValueError as exc:
        p.error(str(exc))
    torch.set_num_threads(args.threads)
    shape = (1, 48, 48)
    model = fer_mobilenet(args.model, args.width, shape).to(args.device)
    params = sum(q.numel() for q in model.parameters())
    x = torch.randn(args.batch_size, *shape, device=args.device)
    load_before = os.getloadavg()

    # Every side gets --sessions independent instances (fresh export and ORT session, fresh model copy):
    # identical ONNX Runtime sessions differ by several percent in speed (memory layout), which would
    # otherwise decide a close ratio. torch.compile gets one instance: compiling takes a minute.
    sides: dict[str, tuple] = {}
    errors: dict[str, str] = {}
    # int8 runtimes change the outputs (benchmarks/latency_ratio_int8.py measures them)
    runtimes = [r for r in latency.available_runtimes(args.device) if (r != "compile" or args.compile)
                and latency.get_runtime(r).kind != "int8"]
    for runtime in runtimes:
        for i in range(1 if runtime == "compile" else args.sessions):
            try:
                runner = latency.make_runner(model, shape, runtime=runtime, device=args.device, threads=args.threads)
                call, output = runner(x)
                start = time.perf_counter()
                output(call())
                first_s = time.perf_counter() - start
                notes = runner.notes + ([f"first call (compile) {first_s:.1f} s"] if runtime == "compile" else [])
                sides[f"{runtime}#{i}"] = (call, output, notes)
            except Exception as exc:
                errors[runtime] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                break
    for i in range(args.sessions):
        try:
            sides[f"plain_ort#{i}"] = plain_ort_side(model, x, args.threads, args.device)
        except Exception as exc:
            errors["plain_ort"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            break

    with torch.inference_mode():
        want = model(x)
    diffs = {}
    for key, (call, output, _) in list(sides.items()):
        name = key.split("#")[0]
        got = output(call()).to(want.device).float()
        diffs[name] = max(diffs.get(name, 0.0), (got - want.float()).abs().max().item())
        if diffs[name] > 1e-4 + 1e-3 * want.abs().max().item():
            errors[name] = f"outputs differ from eager by {diffs[name]:.3g}"
            del sides[key]

    times: dict[str, list[float]] = {key.split("#")[0]: [] for key in sides}
    per_session: dict[str, list[float]] = {key: [] for key in sides}
    order = list(sides)
    for r in range(args.rounds):
        for key in order[r % len(order):] + order[: r % len(order)]:
            ts = latency.time_calls(sides[key][0], args.device, args.warmup, args.calls)
            times[key.split("#")[0]] += ts
            per_session[key] += ts
    load_after = os.getloadavg()

    results = {}
    for name, ts in times.items():
        median, iqr, p95 = latency.summarize_times(ts)
        keys = [k for k in sides if k.split("#")[0] == name]
        results[name] = dict(median_ms=median, iqr_ms=iqr, p95_ms=p95, calls=len(ts), max_abs_diff=diffs[name],
                             session_medians_ms=[statistics.median(per_session[k]) for k in keys],
                             notes=sides[keys[0]][2])
    ours = {k: v for k, v in results.items() if k in latency.runtime_names()}
    fastest = min(ours, key=lambda k: ours[k]["median_ms"]) if ours else None

    device_name = cpu_or_gpu_name(args.device)
    print(f"{args.model} width {args.width}: {params:,} params, batch {args.batch_size}, input {'x'.join(map(str, shape))}, "
          f"{args.threads} thread(s), {args.device}: {device_name}")
    print(f"torch {torch.__version__}; {args.rounds} rounds x {args.calls} calls per instance, {args.sessions} instances per side; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'side':<15}{'median_ms':>11}{'iqr_ms':>9}{'p95_ms':>9}{'max_abs_diff':>14}  per-instance medians (ms)")
    for name, res in sorted(results.items(), key=lambda kv: kv[1]["median_ms"]):
        print(f"{name:<15}{res['median_ms']:>11.4f}{res['iqr_ms']:>9.4f}{res['p95_ms']:>9.4f}{res['max_abs_diff']:>14.2e}  "
              + " ".join(f"{v:.4f}" for v in res["session_medians_ms"]))
    for name, error in errors.items():
        print(f"{name:<15}error: {error}")
    ratios = {}
    if fastest:
        best = results[fastest]["median_ms"]
        print(f"fastest compress runtime: {fastest}")
        if "eager" in results:
            ratios["eager_over_fastest"] = results["eager"]["median_ms"] / best
            print(f"eager / {fastest} = {ratios['eager_over_fastest']:.2f}x (target >= 5)")
        if "plain_ort" in results:
            ratios["plain_ort_over_fastest"] = results["plain_ort"]["median_ms"] / best
            print(f"plain_ort / {fastest} = {ratios['plain_ort_over_fastest']:.3f}x (target >= 1: no slower)")
    if args.json:
        _io.write_json(args.json, dict(
            model=args.model, width_mult=args.width, param_count=params, batch_size=args.batch_size,
            input_shape=list(shape), threads=args.threads, device=args.device, device_name=device_name,
            torch_version=torch.__version__, rounds=args.rounds, calls=args.calls, warmup=args.warmup,
            sessions=args.sessions,
            load_average_before=load_before, load_average_after=load_after, fastest=fastest, ratios=ratios,
            results=results, errors=errors))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
