"""The int8 target, both sides measured in one run: int8 against float ONNX Runtime, and int8 accuracy.

Target (issue 15): on 1 CPU thread, int8 at least 1.5x faster than float ONNX Runtime at batch 1 and at least
2x at batch 32, for the FER MobileNet (``fer_hw8_torch``, 107K params) and MobileNetV1 at width 0.25, accuracy
within 1 point; eager / fastest at least 5x at batch 1.

    python benchmarks/latency_ratio_int8.py                         # both models, trained here on the digits
    python benchmarks/latency_ratio_int8.py --work /tmp/int8runs --epochs 8 --json out.json

What it does, per model: trains it (or reuses ``WORK/<model>-<width>``) on the default digits resized to
1x48x48 (the FER input size; ``--epochs``), writes the int8+fold artifact and its int8 ONNX file with
``compress.export.export_run(..., onnx=..., int8=True)`` (calibrated on training images, checked against the
artifact's float decode on the test split: the accuracy columns), then times in one process, interleaved:
``eager`` (the trained float model), ``onnxruntime`` (the same float model in ONNX Runtime, BatchNorm folded),
``onnxruntime_int8`` (the artifact's stored int8 weights, QDQ graph), ``torch_int8`` (the same weights in
torch's FX int8 kernels) and, with ``compress[openvino]`` installed, ``openvino`` (the float model in OpenVINO)
and ``openvino_int8`` (the stored int8 weights, QDQ graph with symmetric int8 activations, in OpenVINO). Each
int8 runtime's predictions on the whole test split are compared with the artifact's float decode first. Each side runs ``--rounds`` rounds (rotated order) of ``--warmup`` untimed and
``--calls`` timed calls on real test images; medians of all timed calls. Load average before and after is
printed: on a shared machine it matters.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

from compress import _io, data, models, train
from compress import bench as latency
from compress.device import device_name
from compress.export import export_run, read, restore
from compress.int8 import int8_weights

SIDES = ("eager", "onnxruntime", "onnxruntime_int8", "torch_int8", "openvino", "openvino_int8")


def trained_run(work: Path, name: str, width: float, epochs: int, bundle) -> Path:
    """The run folder of ``name`` at ``width`` trained on ``bundle`` (reused when it exists)."""
    out = work / f"{name}-{width:g}"
    if not (out / "metrics.json").exists():
        torch.manual_seed(0)
        model = models.create(name, width_mult=width, num_classes=bundle.num_classes, in_chans=1, input_size=48)
        train.fit(model, bundle, train.TrainConfig(epochs=epochs), out=out, progress=False)
    return out


def sides_for(run, artifact: Path, batch: int, threads: int, sides=SIDES) -> dict:
    """``{side: (call, output)}`` on ``batch`` normalized test images."""
    bundle = run.data()
    x = run.normalizer(bundle.split().x[:batch])
    manifest, encoded = read(artifact)
    decoded, weights = restore(manifest, encoded), int8_weights(manifest["codec"], encoded)
    out = {}
    for side in sides:
        int8 = latency.get_runtime(side).kind == "int8"
        runner = latency.make_runner(decoded if int8 else run.model, x.shape[1:], runtime=side, threads=threads,
                                     weights=weights if int8 else None, data=bundle if int8 else None,
                                     normalizer=run.normalizer)
        out[side] = runner(x)
    return out


def int8_accuracy(run, artifact: Path, sides) -> dict[str, dict]:
    """Per int8 side, on the whole test split: share of predictions equal to the artifact's float decode's
    (0..1) and accuracy (%)."""
    split = run.data().split()
    decoded = restore(*read(artifact)).eval()
    with torch.no_grad():
        want = decoded(run.normalizer(split.x)).argmax(1)
    out = {}
    for side, (call, output) in sides_for(run, artifact, len(split.y), 1, sides).items():
        pred = output(call()).argmax(1)
        out[side] = dict(agreement=(pred == want).float().mean().item(),
                         accuracy=100 * (pred == split.y).float().mean().item(),
                         float_decode_accuracy=100 * (want == split.y).float().mean().item())
    return out


def interleaved(sides: dict, rounds: int, warmup: int, calls: int) -> dict[str, float]:
    """Median ms per side over ``rounds`` rotated rounds of ``calls`` timed calls each."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    order = list(sides)
    for r in range(rounds):
        for key in order[r % len(order):] + order[:r % len(order)]:
            times[key] += latency.time_calls(sides[key][0], "cpu", warmup, calls)
    return {k: latency.summarize_times(v)[0] for k, v in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="fer_hw8_torch:1.0,mobilenet_v1:0.25", help="NAME:WIDTH,... (default both)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per model (default 5)")
    p.add_argument("--work", default=None, help="folder for runs and artifacts (default: a temporary one)")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=100, help="timed calls per side per round at batch 1 (batch 32: / 10)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--calibration", default="minmax", choices=("minmax", "percentile", "entropy"))
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="compress-int8-bench-"))
    bundle = data.load("default", input_size=48)
    load_before = os.getloadavg()
    print(f"{device_name('cpu')}, torch {torch.__version__}, {args.threads} thread(s); load average {load_before[0]:.2f}")
    results = []
    for spec in args.models.split(","):
        name, width = spec.split(":")[0], float(spec.split(":")[1])
        run_dir = trained_run(work, name, width, args.epochs, bundle)
        run = train.load_run(run_dir)
        export = export_run(run_dir, work / f"{name}-{width:g}.npz", codec="int8", fold_bn=True,
                            onnx=work / f"{name}-{width:g}.onnx", int8=True, calibration=args.calibration,
                            overwrite=True)
        check = export.int8
        row = dict(model=name, width_mult=width, param_count=sum(q.numel() for q in run.model.parameters()),
                   fp32_test_acc=100 * run.metrics["test_acc"], int8_check=check.to_dict(), latency_ms={})
        print(f"\n{name} width {width:g}: {row['param_count']:,} params; fp32 test {row['fp32_test_acc']:.2f}%; "
              f"{check.summary()}")
        sides = [s for s in SIDES if s in latency.available_runtimes("cpu")]
        row["int8_accuracy"] = int8_accuracy(run, export.path, [s for s in sides if latency.get_runtime(s).kind == "int8"])
        for side, acc in row["int8_accuracy"].items():
            print(f"  {side}: {100 * acc['agreement']:.1f}% same predictions as the float decode, accuracy "
                  f"{acc['accuracy']:.2f}% ({acc['accuracy'] - acc['float_decode_accuracy']:+.2f} points)")
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            calls = args.calls if batch == 1 else max(5, args.calls // 10)
            medians = interleaved(sides_for(run, export.path, batch, args.threads, sides), args.rounds, args.warmup,
                                  calls)
            row["latency_ms"][batch] = medians
            fastest = min(medians, key=medians.get)
            print(f"  batch {batch}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in medians.items()))
            print("    " + ", ".join(f"onnxruntime / {k} = {medians['onnxruntime'] / medians[k]:.2f}x"
                                     for k in medians if latency.get_runtime(k).kind == "int8" or k == "openvino")
                  + f", eager / fastest ({fastest}) = {medians['eager'] / medians[fastest]:.2f}x")
        results.append(row)
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    if args.json:
        _io.write_json(args.json, dict(device_name=device_name("cpu"), torch_version=torch.__version__,
                                       threads=args.threads, rounds=args.rounds, calls=args.calls,
                                       load_average_before=load_before, load_average_after=load_after,
                                       results=results))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
