"""Helpers shared by the subcommands: argparse types (shapes, counts, ``KEY=VALUE``) and options whose defaults
are the library's (:func:`add_field`, :func:`given`).

Defaults live once, in the library's dataclasses (``TrainConfig``, ``SweepConfig``, ``ExplainConfig``...) and
function signatures; an option that sets one of their fields has argparse default None and a help text that
quotes the library's default, so ``--help`` cannot drift from the library.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
from typing import Any

from compress.cli import _source

__all__ = ["TRAIN_CONFIG", "CREATE", "LOAD", "BUDGET", "finite_float", "MAX_COUNT", "parse_shape", "parse_int_list",
           "parse_count", "parse_counts", "parse_csv", "parse_float_pair",
           "parse_key_value", "non_negative_int", "positive_int", "library_default", "library_constant", "show_default",
           "default_help", "add_field", "field_actions", "given", "add_data_arguments", "report_skipped",
           "MODEL_HELP", "add_model_arguments", "model_arguments", "add_log_arguments"]


# The library settings the options of several commands map, by reference: read from the source by
# compress.cli._source, so building a parser imports neither the library nor torch.
TRAIN_CONFIG = "compress.train.config:TrainConfig"
CREATE = "compress.models.factory:create"
LOAD = "compress.data.sources:load"
BUDGET = "compress.budget:Budget"


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x48x48"`` -> ``(1, 48, 48)``; raises ``argparse.ArgumentTypeError`` on bad input."""
    try:
        dims = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape {text!r} must look like 1x48x48") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"input shape {text!r} must have positive sizes")
    return dims


def parse_int_list(text: str) -> list[int]:
    """``"1,32,256"`` -> ``[1, 32, 256]``."""
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated integers") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive integers")
    return values


MAX_COUNT = 10**15   # counts (parameters, MACs, bytes) beyond this are typos, not budgets


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan``, ``inf`` and ``1e999`` are refused before any work)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number")
    return value


def parse_count(text: str) -> int:
    """``"5k"`` -> 5000, ``"1.5M"`` -> 1500000, ``"225000"`` -> 225000; finite, from 1 to ``MAX_COUNT``."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:] if t else "", 1)
    if scale != 1:
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count like 5k, 1.5M or 225000") from None
    if not math.isfinite(value) or not 0 < value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite count of at most {MAX_COUNT:.0e}")
    if round(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} rounds to 0; a count must be at least 1")
    return int(round(value))


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def parse_key_value(text: str) -> tuple[str, object]:
    """argparse type: ``"KEY=VALUE"`` -> ``(KEY, VALUE)``, VALUE read as JSON (``3``, ``0.1``, ``[8,16]``,
    ``true``, ``null``) and kept as the plain string when it is not JSON (``cosine``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must look like KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_csv(text: str) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_counts(text: str) -> list[int]:
    """``"5k,20k"`` -> ``[5000, 20000]``."""
    return [parse_count(t) for t in parse_csv(text)]


def parse_float_pair(text: str) -> tuple[float, float]:
    """``"0.9,1.1"`` -> ``(0.9, 1.1)``."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be two numbers LOW,HIGH such as 0.9,1.1") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise argparse.ArgumentTypeError(f"{text!r} must be two finite numbers")
    return lo, hi


# ------------------------------------------------------------------------- options that map to library defaults
def library_default(owner: Any, name: str) -> Any:
    """The default of field ``name`` of dataclass ``owner``, or of parameter ``name`` of function ``owner``.

    ``owner`` may be a reference ``"module:name"`` (``"compress.train.config:TrainConfig"``): the default is then
    read from the library's source without importing it (:mod:`compress.cli._source`, so ``--help`` does not
    import torch), and from the imported library only where the source alone cannot say."""
    if isinstance(owner, str):
        try:
            return _source.default(owner, name)
        except _source.NotStatic:
            owner = _source.resolve(owner)
    if isinstance(owner, type) and dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                raise TypeError(f"{owner.__name__}.{name} has no default")
        raise AttributeError(f"{owner.__name__} has no field {name!r}")
    param = inspect.signature(owner).parameters[name]
    if param.default is inspect.Parameter.empty:
        raise TypeError(f"{owner.__qualname__}({name}) has no default")
    return param.default


def library_constant(ref: str) -> Any:
    """The library constant ``"module:NAME"`` (``"compress.prune.schedule:SCHEDULES"``), read from the source
    without importing the library where it can be, imported otherwise."""
    try:
        return _source.constant(ref)
    except _source.NotStatic:
        return _source.resolve(ref)


def show_default(value: Any) -> str:
    """How ``--help`` writes a library default: ``30``, ``0.01``, ``cosine``, ``0.9,1.1``, ``on``/``off``,
    ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if type(value).__name__ == "dtype":   # torch.float32 -> float32
        return str(value).removeprefix("torch.")
    if isinstance(value, (tuple, list)):
        return ",".join(show_default(v) for v in value)
    return str(value)


def default_help(owner: Any, name: str) -> str:
    """The help suffix naming the library default: ``(default 30)``; for a dataclass field of a nested config
    (FilterConfig.steps) the same."""
    return f"(default {show_default(library_default(owner, name))})"


def add_field(parser: Any, flag: str, owner: Any, name: str, *, help: str = "", switch: bool | None = None,
              none: str | None = None, **kwargs: Any) -> argparse.Action:
    """Add option ``flag`` for field ``name`` of dataclass ``owner`` (or parameter ``name`` of function ``owner``);
    ``owner`` is best given as a reference, ``"compress.train.config:TrainConfig"``, read without importing the
    library (:func:`library_default`).

    The option's argparse default is None, so an omitted option leaves the library default in force (build the
    config from the non-None values only, see :func:`given`); its help ends with that default, read from the
    library (``none``: what a None default means, e.g. ``"fp16"``). ``switch=False`` makes a flag that sets the field False (``--no-augment``), ``switch=True`` one that
    sets it True. The mapping is recorded on the action (``action.library_field = (owner, name)``) so tests can
    check every such option (:func:`field_actions`).
    """
    if "default" in kwargs:
        raise TypeError(f"{flag}: the default is the library's ({_source.ref_of(owner)}.{name}); do not pass one")
    default = library_default(owner, name)   # fails early on a typo in `name`
    suffix = default_help(owner, name)
    if switch is None and "choices" not in kwargs:
        kwargs.setdefault("metavar", flag.lstrip("-").upper().replace("-", "_"))
    if switch is not None:
        kwargs.update(action="store_const", const=switch)
        suffix = f"(default {name}={show_default(default)})"
    elif default is None and none:
        suffix = f"(default none: {none})"
    text = f"{help} {suffix}" if help else suffix
    action = parser.add_argument(flag, default=None, dest=kwargs.pop("dest", name), help=text, **kwargs)
    action.library_field = (owner, name)
    # Argument groups share their parser's defaults, so this reaches the namespace of the (sub)command.
    parser.set_defaults(library_fields=(*(parser.get_default("library_fields") or ()), (action.dest, owner, name)))
    return action


def field_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` added by :func:`add_field`."""
    return [a for a in parser._actions if getattr(a, "library_field", None) is not None]


def given(args: argparse.Namespace, owner: Any) -> dict[str, Any]:
    """``{field: value}`` for the :func:`add_field` options of ``owner`` (the object or its ``"module:name"``) that
    the user gave; omitted ones (None) are left out, so ``owner(**given(args, owner))`` keeps the library's
    defaults for them."""
    ref = _source.ref_of(owner)
    return {name: getattr(args, dest) for dest, o, name in getattr(args, "library_fields", ())
            if _source.ref_of(o) == ref and getattr(args, dest, None) is not None}


# ---------------------------------------------------------------------------------------------------- models
MODEL_HELP = ("a registered model (see `compress models`), PATH.py:NAME (a class or function in your file "
              "returning an nn.Module; importing the file runs its code), torchvision:NAME or timm:NAME")


def add_model_arguments(p: Any, *, flag: str | None = "--model", required: bool = False) -> None:
    """``--model NAME`` (``flag=None``: the caller adds it, positional or otherwise), ``--model-args KEY=VALUE``
    (repeatable; ``--model-opt`` is its older spelling) and ``--width-arg NAME``."""
    if flag is not None:
        p.add_argument(flag, required=required, metavar="MODEL",
                       help=MODEL_HELP + (" (required)" if required else ""))
    p.add_argument("--model-args", "--model-opt", dest="model_args", type=parse_key_value, action="append",
                   default=None, metavar="KEY=VALUE",
                   help="keyword argument for the model (a family option, or your model's / torchvision's / timm's "
                        "own argument; VALUE read as JSON), repeatable")
    p.add_argument("--width-arg", default=None, metavar="NAME",
                   help="for a model from a file, torchvision or timm: its keyword argument that sets the width "
                        "(given with --model-args), which --width and width scaling multiply")


def model_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments :func:`add_model_arguments` collected, for ``compress.models.create``."""
    out = dict(getattr(args, "model_args", None) or [])
    from compress.models import create

    own = [k for k in out if k in inspect.signature(create).parameters]
    if own:
        raise ValueError(f"--model-args {own[0]}=...: {own[0]} is an option of compress itself, set from the data "
                         f"or by its own flag (--width, --input, --input-size...), not a model argument")
    if getattr(args, "width_arg", None):
        out["width_arg"] = args.width_arg
    return out


# ---------------------------------------------------------------------------------------------------- budgets
def add_budget_options(p: Any, *, latency: bool = True) -> None:
    """The fields of :class:`compress.budget.Budget` as options (scale, prune): ``--max-params``, ``--max-macs``,
    ``--max-bytes`` with ``--file-format``, and with ``latency`` ``--max-latency-ms`` with ``--latency-runtime``,
    ``--latency-batch`` and ``--latency-threads``. :func:`budget_from` builds the Budget."""
    add_field(p, "--max-params", BUDGET, "max_params", type=parse_count, metavar="N",
              help="parameters, e.g. 100k", none="no limit")
    add_field(p, "--max-macs", BUDGET, "max_macs", type=parse_count, metavar="N",
              help="multiply-accumulates for one image, e.g. 5M", none="no limit")
    add_field(p, "--max-bytes", BUDGET, "max_bytes", type=parse_count, metavar="N",
              help="bytes of the model's file in --file-format, e.g. 225000", none="no limit")
    add_field(p, "--file-format", BUDGET, "file_format", choices=list(library_constant("compress.budget:STATE_DICT_FORMATS")),
              help="what --max-bytes counts: the state_dict saved by torch.save (pt) or np.savez (npz) in "
                   "float16 or float32")
    if latency:
        add_field(p, "--max-latency-ms", BUDGET, "max_latency_ms", type=finite_float, metavar="MS",
                  help="median ms per call on this machine, measured (slow, and it depends on the load)",
                  none="no limit")
        add_field(p, "--latency-runtime", BUDGET, "runtime", dest="latency_runtime",
                  help="runtime --max-latency-ms is measured on (see compress bench)")
        add_field(p, "--latency-batch", BUDGET, "batch_size", dest="latency_batch", type=positive_int,
                  help="images per call for --max-latency-ms")
        add_field(p, "--latency-threads", BUDGET, "threads", dest="latency_threads", type=positive_int,
                  help="CPU threads for --max-latency-ms")


def budget_from(args: argparse.Namespace) -> Any:
    """The :class:`compress.budget.Budget` of the options :func:`add_budget_options` added, or None when none was
    given (a ValueError for a bad value names the field)."""
    from compress.budget import Budget

    values = given(args, Budget)
    return Budget(**values) if values else None


# ---------------------------------------------------------------------------------------------------- tracking
def _log_names(text: str) -> list[str]:
    """argparse type: ``"tensorboard,csv"`` -> ``["tensorboard", "csv"]``; an unknown name lists the known."""
    from compress.track.make import check_names

    try:
        return check_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--log: ")) from None


def add_log_arguments(p: Any, *, csv: str = "the run folder") -> None:
    """``--log NAME[,NAME]`` and ``--log-dir DIR`` (compress.track.make_loggers); ``csv``: where metrics.csv
    goes, for the help."""
    from compress.track.make import LOGGERS, make_loggers   # torch-free

    g = p.add_argument_group("experiment tracking (compress.track)")
    g.add_argument("--log", type=_log_names, default=None, metavar="NAME[,NAME]",
                   help=f"log settings, per-epoch metrics, final metrics and figures to {', '.join(LOGGERS)} "
                        f"(csv: metrics.csv in {csv}; tensorboard and mlflow need pip install \"compress[track]\"; "
                        "default none: no tracking)")
    add_field(g, "--log-dir", make_loggers, "log_dir", metavar="DIR",
              help="TensorBoard writes DIR/runs/RUN, MLflow's file store is DIR/mlruns")


# ---------------------------------------------------------------------------------------------------- data options
def add_data_arguments(p: Any, *, default: str | None = "default", required: bool = False) -> None:
    """``--data SOURCE``, ``--test-data PATH``, ``--test-fraction F`` and ``--skip-bad-rows`` (every command taking
    ``--data``); ``--test-data`` and ``--test-fraction`` map onto ``compress.data.load``'s ``test`` and
    ``test_fraction`` (:func:`given` with ``load``)."""
    p.add_argument("--data", default=default, required=required, metavar="SOURCE",
                   help="CSV (label,feature | emotion,pixels,Usage | id,feature), .npz, image folder (one subfolder "
                        "per class, or train/ val/ test/ of those), 'default' (5,000 MNIST digits) or 'synthetic'"
                        + (f" (default {default})" if default else ""))
    add_field(p, "--test-data", LOAD, "test", dest="test_data", metavar="PATH",
              help="test split from this file or folder (its classes and image size must match --data's)",
              none="the source's own test split, else --test-fraction held out")
    add_field(p, "--test-fraction", LOAD, "test_fraction", type=finite_float, metavar="F",
              help="share of each class's training rows held out as the test split when the data has none "
                   "(seeded apart from --seed, so every seed is tested on the same images; 0: none)")
    p.add_argument("--skip-bad-rows", action="store_true",
                   help="skip rows with bad data (and list them) instead of stopping at the first")


def report_skipped(bundle: Any, limit: int = 10) -> None:
    """List the rows ``--skip-bad-rows`` skipped, on stderr."""
    import sys

    if not bundle.skipped:
        return
    print(f"skipped {len(bundle.skipped)} bad rows:", file=sys.stderr)
    for f, line, reason in bundle.skipped[:limit]:
        print(f"  {f}:{line}: {reason}" if line else f"  {f}: {reason}", file=sys.stderr)
    if len(bundle.skipped) > limit:
        print(f"  ... and {len(bundle.skipped) - limit} more", file=sys.stderr)


class split_warnings:
    """A context manager: a :class:`compress.evidence.SplitTooSmallWarning` raised inside prints once, as one line
    ``compress COMMAND: warning: ...`` on stderr, when it is raised; other warnings show as usual."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __enter__(self) -> "split_warnings":
        import sys
        import warnings

        from compress.evidence import SplitTooSmallWarning

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        shown, seen = warnings.showwarning, set()

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, SplitTooSmallWarning):
                return shown(message, category, filename, lineno, file, line)
            if str(message) not in seen:
                seen.add(str(message))
                print(f"compress {self.command}: warning: {message}", file=sys.stderr, flush=True)

        warnings.showwarning = show
        warnings.simplefilter("always", SplitTooSmallWarning)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._catch.__exit__(*exc)
