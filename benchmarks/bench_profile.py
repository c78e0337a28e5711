"""Time to profile MobileNetV1-224: ``compress.profile`` against fvcore's ``FlopCountAnalysis``, one run.

Target (issue 2): at least 5x faster than ``FlopCountAnalysis(model, x).total()``, with identical MACs (fvcore
also counts BatchNorm and adaptive pooling, so its conv and addmm/linear entries are what must equal our MACs).

    python benchmarks/bench_profile.py                  # 1 thread, 7 rounds
    python benchmarks/bench_profile.py --threads 2 --rounds 11 --json out.json
    pytest benchmarks/bench_profile.py                  # the same sides as pytest-benchmark tests

Sides: ``profile`` = ``profile(model, (3, 224, 224), serialize=False)``, the counts fvcore also gives (it runs
the forward on the meta device, shapes only); ``profile+files`` = the default ``profile(...)``, which also writes
the state_dict four times (fp32/fp16 ``.pt`` and ``.npz``) to measure file sizes; ``fvcore`` =
``FlopCountAnalysis(model, x).total()`` on a real zeros input (it must trace a real forward).

Method: torch's thread count is fixed; one untimed warm-up call per side (the first meta run also loads torch's
meta kernels, about 3 s, once per process); then ``--rounds`` rounds, each timing every side once in rotated
order, so that slow phases of a shared machine spread over all sides. Reported: median and IQR per side; the
ratio is of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from typing import Callable

import pytest
import torch

from compress import _io
from compress.models import create
from compress.profile import profile

SHAPE = (3, 224, 224)


def mobilenet_v1_224() -> torch.nn.Module:
    return create("mobilenet_v1", in_chans=3, num_classes=1000, input_size=224).eval()


def fvcore_total(model: torch.nn.Module, x: torch.Tensor):
    """fvcore's analysis after ``.total()`` (the whole count), warnings off as a user would have them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        analysis.total()
    return analysis


def fvcore_macs(analysis) -> int:
    """fvcore's conv + linear entries: the part in the papers' convention (it adds BatchNorm and pooling)."""
    by_op = analysis.by_operator()
    return int(sum(by_op.get(k, 0) for k in ("conv", "linear", "addmm", "matmul", "mm", "bmm")))


def sides(model: torch.nn.Module) -> dict[str, Callable[[], object]]:
    x = torch.zeros(1, *SHAPE)
    return {
        "profile": lambda: profile(model, SHAPE, serialize=False),
        "profile+files": lambda: profile(model, SHAPE),
        "fvcore": lambda: fvcore_total(model, x),
    }


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, each timing every side once")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        import fvcore.nn  # noqa: F401  (the other side of the ratio)
    except ImportError as exc:
        print(f"bench_profile: fvcore is needed for the comparison: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = mobilenet_v1_224()
    calls = sides(model)

    ours = calls["profile"]()  # warm-up, and the counts to check
    analysis = calls["fvcore"]()
    calls["profile+files"]()
    macs_fvcore = fvcore_macs(analysis)
    if ours.macs != macs_fvcore:
        print(f"MACs differ: compress {ours.macs:,} vs fvcore conv+linear {macs_fvcore:,}", file=sys.stderr)
        return 1

    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    load_before = os.getloadavg()
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()

    stats = {name: quartiles(ts) for name, ts in times.items()}
    fv = stats["fvcore"][1]
    print(f"MobileNetV1-224, batch 1, torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds; "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print(f"MACs: compress {ours.macs:,} = fvcore conv+linear {macs_fvcore:,} (fvcore total {analysis.total():,}, "
          f"which adds BatchNorm and pooling)")
    print(f"{'side':<14} {'median ms':>10} {'IQR ms':>16} {'fvcore / side':>14}")
    for name, (q1, med, q3) in stats.items():
        print(f"{name:<14} {1e3 * med:>10.1f} {f'{1e3 * q1:.1f}-{1e3 * q3:.1f}':>16} {fv / med:>13.1f}x")
    ratio = fv / stats["profile"][1]
    print(f"profile is {ratio:.1f}x faster than fvcore (target 5x: {'met' if ratio >= 5 else 'NOT met'})")
    if args.json:
        _io.write_json(args.json, {
            "model": "mobilenet_v1-224", "torch": torch.__version__, "threads": args.threads, "rounds": args.rounds,
            "macs": ours.macs, "fvcore_conv_linear_macs": macs_fvcore, "fvcore_total": analysis.total(),
            "median_ms": {k: 1e3 * v[1] for k, v in stats.items()},
            "iqr_ms": {k: [1e3 * v[0], 1e3 * v[2]] for k, v in stats.items()}, "ratio_fvcore_over_profile": ratio,
            "load_average": [load_before[0], load_after[0]]})
    return 0


# --- pytest-benchmark: `pytest benchmarks/bench_profile.py` ----------------------------------------------------


@pytest.fixture(autouse=True)
def _one_thread():
    """The same fixed thread count as the script's default, restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model():
    return mobilenet_v1_224()


def test_macs_identical_to_fvcore():
    pytest.importorskip("fvcore")
    model = _model()
    assert profile(model, SHAPE, serialize=False).macs == fvcore_macs(fvcore_total(model, torch.zeros(1, *SHAPE)))


def test_bench_profile(benchmark):
    model = _model()
    benchmark.group = "profile MobileNetV1-224"
    result = benchmark(profile, model, SHAPE, serialize=False)
    assert result.macs == 568_740_352


def test_bench_profile_with_files(benchmark):
    model = _model()
    benchmark.group = "profile MobileNetV1-224"
    assert benchmark(profile, model, SHAPE).file_size_bytes


def test_bench_fvcore(benchmark):
    pytest.importorskip("fvcore")
    model = _model()
    benchmark.group = "profile MobileNetV1-224"
    benchmark.pedantic(fvcore_total, args=(model, torch.zeros(1, *SHAPE)), rounds=5, warmup_rounds=1)


if __name__ == "__main__":
    sys.exit(main())
