"""``compress bench RUN|ARTIFACT|ONNX|MODEL_NAME``: inference latency across runtimes and batch sizes.

Prints one row per runtime and batch size (median, interquartile range and p95 of per-call times in ms,
images/s) and with ``--json`` writes the records (see ``compress.bench.LatencyRecord``). The target is
a run folder written by ``compress train``, an artifact file written by ``compress.export``, an ONNX file
(timed as it is on the onnxruntime runtime, or openvino), or a model name from ``compress.models`` (built
with ``--width``, random weights: latency does not depend on them).

Every runtime's outputs are checked against eager first; one that disagrees gets an error, not a time. The
int8 runtimes run an int8 artifact's stored weights, or a float model through the int8+fold codec, with
activation ranges calibrated on the run's training images (else on random inputs). The last lines name the
fastest runtime that passed its output check at each batch size.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from compress.cli._common import (CREATE, add_field, add_model_arguments, finite_float, given, model_arguments,
                                  non_negative_int, parse_csv, parse_int_list, parse_shape, positive_int)

MEASURE = "compress.bench.latency:measure"
SUMMARY = "inference latency across runtimes and batch sizes"


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help=SUMMARY,
                              description=f"{__doc__}\n{_runtimes_help()}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", metavar="RUN|ARTIFACT|ONNX|MODEL",
                   help="run folder, artifact file (.npz/.pt), ONNX file (.onnx), or a model: a registered name, "
                        "PATH.py:NAME (importing the file runs its code), torchvision:NAME or timm:NAME")
    add_model_arguments(p, flag=None)
    add_field(p, "--width", CREATE, "width_mult", metavar="W", type=finite_float,
              help="width multiplier when TARGET is a model name")
    p.add_argument("--input", metavar="CxHxW", type=parse_shape, default=None,
                   help="one input image's shape (default: the model's own)")
    add_field(p, "--device", MEASURE, "device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--runtimes", metavar="LIST", type=parse_csv, default=None,
                   help="comma-separated runtimes (default: those of the default set that run here on the "
                        "device, the int8 ones only for a model name, a run or an int8 artifact; see the list "
                        "above)")
    add_field(p, "--batch-sizes", MEASURE, "batch_sizes", metavar="LIST", type=parse_int_list,
              help="comma-separated batch sizes")
    add_field(p, "--threads", MEASURE, "threads", metavar="N", type=positive_int,
              help="CPU threads during timing", none="torch's current count")
    add_field(p, "--warmup", MEASURE, "warmup", metavar="N", type=non_negative_int, help="untimed calls first")
    add_field(p, "--repeats", MEASURE, "repeats", metavar="N", type=positive_int, help="timed calls")
    p.add_argument("--json", metavar="PATH", default=None, help="write the records as JSON here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from compress import _io
    from compress.bench import LatencyResult, get_runtime, measure
    from compress.onnx import OnnxModel

    if args.json:
        _io.check_output(args.json, inputs=[args.target], overwrite=args.overwrite, what="--json")
    from compress.bench.latency import check_input_bytes

    from compress.cli._common import library_default

    options = given(args, measure)
    device = options.get("device", "cpu")
    batch_sizes = options.setdefault("batch_sizes", list(library_default(measure, "batch_sizes")))
    if not batch_sizes:
        raise ValueError("--batch-sizes names no batch size")
    if args.input is not None:   # before the model is built for it
        check_input_bytes(args.input, max(batch_sizes))
    model, input_shape = _target(args.target, args.input, args)
    check_input_bytes(input_shape, max(batch_sizes))
    runtimes = _onnx_runtimes(args.runtimes, device) if isinstance(model, OnnxModel) else \
        _runtimes(args.runtimes, device, int8=_has_int8_path(model))
    int8 = any(get_runtime(r).kind == "int8" for r in runtimes)
    data, normalizer = _calibration(args.target, input_shape) if int8 else (None, None)
    result = LatencyResult()
    for runtime in runtimes:
        result += measure(model, input_shape, runtime=runtime, data=data, normalizer=normalizer, **options)
    print(result.summary())
    if args.json:
        _io.write_json(args.json, [r.to_dict() for r in result])
        print(f"wrote {args.json}")
    return 1 if all(r.error for r in result) else 0


def _runtimes(names: list[str] | None, device: str, *, int8: bool = True) -> list[str]:
    from compress.bench import check_runtime, default_runtimes, runtime_names
    from compress.device import resolve_device

    device = resolve_device(device).type
    if names is None:
        return default_runtimes(device, int8=int8)
    if not names:
        raise ValueError(f"--runtimes names no runtime; known: {', '.join(runtime_names())}")
    for name in names:
        check_runtime(name, device)
    return names


ONNX_RUNTIMES = ("onnxruntime", "openvino")   # the runtimes that run an ONNX file as it is


def _onnx_runtimes(names: list[str] | None, device: str) -> list[str]:
    """The runtimes an ONNX file is timed on: ``onnxruntime`` by default; refused for the others (they run a
    PyTorch model)."""
    names = ["onnxruntime"] if names is None else names
    bad = [n for n in names if n not in ONNX_RUNTIMES]
    if bad or not names:
        raise ValueError(f"an ONNX file runs on {' or '.join(ONNX_RUNTIMES)}, not {', '.join(bad) or 'nothing'}; "
                         f"bench a run folder or an artifact for the PyTorch runtimes")
    return _runtimes(names, device)


def _runtimes_help() -> str:
    """The registered runtimes by kind, read from their records: where each runs, the extra it needs, and
    which are left out of the default set."""
    import textwrap

    from compress.bench import registered_runtimes

    where: dict[tuple[str, ...], list[str]] = {("cpu",): ["CPU only"], ("cuda",): ["CUDA only"]}
    lines = ["runtimes (* = only on request, not in the default set):"]
    for kind in ("float", "half", "int8"):
        names = []
        for r in registered_runtimes(kind=kind):
            notes = where.get(r.devices, []) + ([f"pip install 'compress[{r.extra}]'"] if r.extra else [])
            names.append(r.name + ("*" if not r.default else "") + (f" ({', '.join(notes)})" if notes else ""))
        if names:
            lines += textwrap.wrap(f"{kind}: {', '.join(names)}", 110, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def _target(target: str, input_shape: tuple[int, ...] | None, args: argparse.Namespace):
    """(model or artifact path, input shape) for a run folder, artifact file or model name; the shape is
    ``--input`` or the model card's."""
    from compress.models import create, list_models

    path = Path(target)
    if path.is_dir():
        from compress.train import load_run

        run = load_run(path)
        return run.model, input_shape or _card_shape(run.card, target)
    if path.is_file():
        from compress.export import describe, load_model

        model: Any
        if path.suffix.lower() == ".onnx":
            model, info = load_model(path)
        else:
            model, info = path, describe(path)   # measure() reads the artifact itself (int8 weights, codec)
        shape = input_shape or info.input_shape
        if shape is None:
            raise ValueError(f"{target}: stores no input shape; pass --input CxHxW")
        return model, tuple(shape)
    from compress.models.sources import is_external

    if target not in list_models() and not is_external(target):
        raise ValueError(f"{target!r} is neither a run folder, an artifact file nor a model name; "
                         f"known models: {', '.join(list_models())}, or PATH.py:NAME, torchvision:NAME, timm:NAME")
    shape_kw: dict[str, Any] = {}
    if input_shape is not None:
        if len(input_shape) != 3 or input_shape[1] != input_shape[2]:
            raise ValueError(f"--input {'x'.join(map(str, input_shape))} must be CxHxW with H == W for a model name")
        shape_kw = {"in_chans": input_shape[0], "input_size": input_shape[1]}
    from compress.models import card_of

    built = create(target, **shape_kw, **given(args, create), **model_arguments(args))
    card = card_of(built)
    assert card is not None   # create() gives every model its card
    return built, card.input_shape


def _has_int8_path(model) -> bool:
    """A model (quantized by the int8 runtimes themselves) or an artifact written with an int8 codec."""
    if not isinstance(model, Path):
        return True
    from compress.export import read
    from compress.int8 import INT8_CODECS
    from compress.quant.codecs import Codec

    return Codec.from_json(read(model)[0]["codec"]).label in INT8_CODECS


def _calibration(target: str, input_shape):
    """``(data, normalizer)`` of the run ``target`` is (or, for an artifact, came from), whose training images
    calibrate int8 activations; ``(None, None)`` (random inputs) for a model name, when that run folder is gone or
    no longer loads, or when its images are not of ``input_shape``."""
    from compress.train import load_run

    path = Path(target)
    if path.is_file():
        from compress.export import read

        run_dir = read(path)[0]["meta"].get("run")
        if not run_dir:
            return None, None
        path = Path(run_dir)
    if not path.is_dir() or not (path / "config.json").is_file():
        return None, None
    try:
        run = load_run(path)
    except (ValueError, OSError):   # a run whose model no longer rebuilds (its file moved): random inputs
        return None, None
    data = run.data()
    if data.train is None or tuple(data.train.x.shape[1:]) != tuple(input_shape):
        return None, None
    return data, run.normalizer


def _card_shape(card, target: str) -> tuple[int, int, int]:
    if card is None:
        raise ValueError(f"{target}: no model card to take the input shape from; pass --input CxHxW")
    return tuple(card.input_shape)
