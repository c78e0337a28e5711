"""``compress bench RUN|ARTIFACT|MODEL_NAME``: inference latency across runtimes and batch sizes.

Prints one row per runtime and batch size (median, interquartile range and p95 of per-call times in ms,
images/s) and with ``--json`` writes the records (see ``compress.bench.LatencyRecord``). The target is
a run folder written by ``compress train``, an artifact file written by ``compress.export``, or a model
name from ``compress.models`` (built with ``--width``, random weights: latency does not depend on them).

Runtimes: eager, folded (BatchNorm folded into convs), channels_last, compile (torch.compile; compile
time reported separately), onnxruntime (needs ``pip install 'compress[onnx]'``), cuda_graph (CUDA only:
the folded model captured as a CUDA graph and replayed), cuda_graph_fp16 and cuda_graph_bf16 (the same in
half precision), openvino (needs ``pip install 'compress[openvino]'``: the ONNX export in OpenVINO, float32),
onnxruntime_int8, torch_int8 and openvino_int8 (CPU int8: an int8 artifact's stored weights, or a float
model through the int8+fold codec; activation ranges calibrated on the run's training images, else on
random inputs). The last lines name the fastest runtime that passed its output check at each batch size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.cli._common import (add_field, finite_float, given, non_negative_int, parse_csv, parse_int_list,
                                  parse_shape, positive_int)

DEFAULT_RUNTIMES = ("eager", "folded", "channels_last", "onnxruntime", "openvino", "onnxruntime_int8", "torch_int8",
                    "openvino_int8", "cuda_graph", "cuda_graph_fp16", "cuda_graph_bf16")


def register(subparsers) -> None:
    from compress.bench import measure
    from compress.models import create

    p = subparsers.add_parser("bench", help="inference latency across runtimes and batch sizes",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RUN|ARTIFACT|MODEL_NAME",
                   help="run folder, artifact file, or registered model name")
    add_field(p, "--width", create, "width_mult", metavar="W", type=finite_float,
              help="width multiplier when TARGET is a model name")
    p.add_argument("--input", metavar="CxHxW", type=parse_shape, default=None,
                   help="one input image's shape (default: the model's own)")
    add_field(p, "--device", measure, "device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--runtimes", metavar="LIST", type=parse_csv, default=None,
                   help="comma-separated runtimes (default: eager,folded,channels_last, onnxruntime, "
                        "onnxruntime_int8, openvino and openvino_int8 when installed, torch_int8 (int8 only "
                        "for int8 artifacts), "
                        "cuda_graph[_fp16,_bf16] on cuda; compile only on request: it takes a minute per batch "
                        "size on CPU)")
    p.add_argument("--batch-sizes", metavar="LIST", type=parse_int_list, default=[1, 32],
                   help="comma-separated batch sizes (default 1,32)")
    add_field(p, "--threads", measure, "threads", metavar="N", type=positive_int,
              help="CPU threads during timing", none="torch's current count")
    add_field(p, "--warmup", measure, "warmup", metavar="N", type=non_negative_int, help="untimed calls first")
    add_field(p, "--repeats", measure, "repeats", metavar="N", type=positive_int, help="timed calls")
    p.add_argument("--json", metavar="PATH", default=None, help="write the records as JSON here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compress import _io
    from compress.bench import INT8_RUNTIMES, fastest_summary, format_table, measure

    if args.json:
        _io.check_output(args.json, inputs=[args.target], overwrite=args.overwrite, what="--json")
    options = given(args, measure)
    device = options.get("device", "cpu")
    model, input_shape = _target(args.target, args.input, args)
    runtimes = _runtimes(args.runtimes, device, int8=_has_int8_path(model))
    calibration = _calibration(args.target, input_shape) if set(runtimes) & set(INT8_RUNTIMES) else None
    records = []
    for runtime in runtimes:
        records += measure(model, input_shape, runtime=runtime, batch_sizes=args.batch_sizes,
                           calibration=calibration, **options)
    print(format_table(records))
    print(fastest_summary(records))
    if args.json:
        _io.write_json(args.json, [r.to_dict() for r in records])
        print(f"wrote {args.json}")
    return 1 if all(r.error for r in records) else 0


def _runtimes(names: list[str] | None, device: str, *, int8: bool = True) -> list[str]:
    from compress.bench import INT8_RUNTIMES, RUNTIMES, available_runtimes, check_runtime
    from compress.device import resolve_device

    device = resolve_device(device).type
    if names is None:
        available = available_runtimes(device)
        return [r for r in DEFAULT_RUNTIMES if r in available and (int8 or r not in INT8_RUNTIMES)]
    if not names:
        raise ValueError(f"--runtimes names no runtime; known: {', '.join(RUNTIMES)}")
    for name in names:
        check_runtime(name, device)
    return names


def _target(target: str, input_shape: tuple[int, ...] | None, args: argparse.Namespace):
    """(model or artifact path, input shape) for a run folder, artifact file or model name; the shape is
    ``--input`` or the model card's."""
    from compress.models import ModelCard, create, list_models

    path = Path(target)
    if path.is_dir():
        from compress.train import load_run

        run = load_run(path)
        return run.model, input_shape or _card_shape(run.card, target)
    if path.is_file():
        from compress.export import read

        manifest, _ = read(path)
        spec = manifest.get("model", {})
        card = (ModelCard.from_dict(spec["card"]) if "card" in spec
                else ModelCard(spec["build_args"]) if "build_args" in spec else None)   # older artifacts
        return path, input_shape or _card_shape(card, target)
    if target not in list_models():
        raise ValueError(f"{target!r} is neither a run folder, an artifact file nor a model name; "
                         f"known models: {', '.join(list_models())}")
    shape_kw = {}
    if input_shape is not None:
        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ValueError(f"--input {'x'.join(map(str, input_shape))} must be CxHxW with H == W for a model name")
        shape_kw = {"in_chans": input_shape[0], "input_size": input_shape[1]}
    model = create(target, **shape_kw, **given(args, create))
    return model, model.card.input_shape


def _has_int8_path(model) -> bool:
    """A model (quantized by the int8 runtimes themselves) or an artifact written with an int8 codec."""
    if not isinstance(model, Path):
        return True
    from compress.export import read
    from compress.export.onnx_int8 import INT8_CODECS
    from compress.quant.codecs import Codec

    return Codec.from_json(read(model)[0]["codec"]).label in INT8_CODECS


def _calibration(target: str, input_shape):
    """Normalized training images of the run ``target`` is (or, for an artifact, came from) to calibrate int8
    activations on; None (random inputs) for a model name or when that run folder is gone."""
    from compress.export.onnx_int8 import Int8Config, training_images
    from compress.train import load_run

    path = Path(target)
    if path.is_file():
        from compress.export import read

        run_dir = read(path)[0]["meta"].get("run")
        if not run_dir:
            return None
        path = Path(run_dir)
    if not path.is_dir() or not (path / "config.json").is_file():
        return None
    run = load_run(path)
    images = training_images(run.data().train.x, Int8Config().calibration_images, run.normalizer)
    return images if tuple(images.shape[1:]) == tuple(input_shape) else None


def _card_shape(card, target: str) -> tuple[int, int, int]:
    if card is None:
        raise ValueError(f"{target}: no model card to take the input shape from; pass --input CxHxW")
    return tuple(card.input_shape)
