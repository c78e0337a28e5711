"""``compress bench RUN|ARTIFACT|MODEL_NAME``: inference latency across runtimes and batch sizes.

Prints one row per runtime and batch size (median, interquartile range and p95 of per-call times in ms,
images/s) and with ``--json`` writes the records (see ``compress.latency.LatencyRecord``). The target is
a run folder written by ``compress train``, an artifact file written by ``compress.artifact``, or a model
name from ``compress.models`` (built with ``--width``, random weights: latency does not depend on them).

Runtimes: eager, folded (BatchNorm folded into convs), channels_last, compile (torch.compile; compile
time reported separately), onnxruntime (needs ``pip install 'compress[onnx]'``), cuda_graph (CUDA only:
the folded model captured as a CUDA graph and replayed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.cli._common import non_negative_int, parse_int_list, parse_shape, positive_int

DEFAULT_RUNTIMES = ("eager", "folded", "channels_last", "onnxruntime", "cuda_graph")


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="inference latency across runtimes and batch sizes",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RUN|ARTIFACT|MODEL_NAME",
                   help="run folder, artifact file, or registered model name")
    p.add_argument("--width", metavar="W", type=float, default=1.0,
                   help="width multiplier when TARGET is a model name (default 1.0)")
    p.add_argument("--input", metavar="CxHxW", type=parse_shape, default=None,
                   help="one input image's shape (default: the model's own, else 1x48x48)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    p.add_argument("--runtimes", metavar="LIST", default=None,
                   help="comma-separated runtimes (default: eager,folded,channels_last, onnxruntime when "
                        "installed, cuda_graph on cuda; compile only on request: it takes a minute per batch "
                        "size on CPU)")
    p.add_argument("--batch-sizes", metavar="LIST", type=parse_int_list, default=[1, 32],
                   help="comma-separated batch sizes (default 1,32)")
    p.add_argument("--threads", metavar="N", type=positive_int, default=None,
                   help="CPU threads during timing (default: torch's current count)")
    p.add_argument("--warmup", metavar="N", type=non_negative_int, default=10,
                   help="untimed calls first (default 10)")
    p.add_argument("--repeats", metavar="N", type=positive_int, default=50, help="timed calls (default 50)")
    p.add_argument("--json", metavar="PATH", default=None, help="write the records as JSON here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compress import _io, latency

    runtimes = _runtimes(args.runtimes, args.device)
    model, input_shape = _target(args.target, args.width, args.input)
    records = []
    for runtime in runtimes:
        records += latency.measure(model, input_shape, device=args.device, runtime=runtime,
                                   batch_sizes=args.batch_sizes, threads=args.threads,
                                   warmup=args.warmup, repeats=args.repeats)
    print(format_table(records))
    if args.json:
        _io.write_json(args.json, [r.to_dict() for r in records])
        print(f"wrote {args.json}")
    return 1 if all(r.error for r in records) else 0


def format_table(records) -> str:
    """Plain-text table of records, one line each; errors in place of the times."""
    if not records:
        return "(no records)"
    head = records[0]
    lines = [f"{head.device_name}, input {'x'.join(map(str, head.input_shape))}",
             f"{'runtime':<14}{'device':<7}{'batch':>6}{'threads':>8}{'median_ms':>11}{'iqr_ms':>9}"
             f"{'p95_ms':>9}{'images_per_s':>14}  notes"]
    for r in records:
        left = f"{r.runtime:<14}{r.device:<7}{r.batch_size:>6}{r.threads:>8}"
        if r.error:
            lines.append(f"{left}  error: {r.error}")
            continue
        extra = [f"compile {r.compile_s:.1f} s"] if r.compile_s is not None else []
        lines.append(f"{left}{r.median_ms:>11.3f}{r.iqr_ms:>9.3f}{r.p95_ms:>9.3f}{r.images_per_s:>14,.0f}  "
                     + "; ".join(extra + [n for n in r.notes if not n.startswith("onnxruntime ")]))
    return "\n".join(lines)


def _runtimes(text: str | None, device: str) -> list[str]:
    from compress import latency

    latency.check_device(device)
    if text is None:
        available = latency.available_runtimes(device)
        return [r for r in DEFAULT_RUNTIMES if r in available]
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ValueError(f"--runtimes {text!r} names no runtime; known: {', '.join(latency.RUNTIMES)}")
    for name in names:
        latency.check_runtime(name, device)
    return names


def _target(target: str, width: float, input_shape: tuple[int, ...] | None):
    """(model or artifact path, input shape) for a run folder, artifact file or model name."""
    path = Path(target)
    if path.is_dir():
        from compress import train

        model = train.load_run(path).model
        return model, input_shape or _shape_of(getattr(model, "build_args", {}))
    if path.is_file():
        from compress import artifact

        manifest, _ = artifact.read(path)
        return path, input_shape or _shape_of(manifest.get("model", {}).get("build_args") or {})
    from compress import models

    if target not in models.list_models():
        raise ValueError(f"{target!r} is neither a run folder, an artifact file nor a model name; "
                         f"known models: {', '.join(models.list_models())}")
    shape = input_shape or (1, 48, 48)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"--input {'x'.join(map(str, shape))} must be CxHxW with H == W for a model name")
    return models.create(target, width_mult=width, in_chans=shape[0], input_size=shape[1]), shape


def _shape_of(build_args: dict) -> tuple[int, int, int]:
    size = build_args.get("input_size", 48)
    return (build_args.get("in_chans", 1), size, size)
