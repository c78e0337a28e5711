"""Fitting a byte budget: the most accurate artifact of a trained model that fits, and the most accurate
model of a family that fits (width x codec search, each candidate trained).

    result = fit_bytes(model, data, 225_000, path="model.npz")    # candidates lossless -> lossy
    best, rows = fit_budget("mobilenet_v1", 225_000, "default")   # "what is the best model in N bytes"

Sizes are those of files really written (``os.path.getsize``, as ``du --apparent-size`` counts them).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from compress import _io
from compress.data.bundle import DataBundle, Normalizer, Split
from compress.export.artifact import FORMATS, format_of, load, model_spec, save, serialize
from compress.quant.codecs import Codec

__all__ = ["DEFAULT_CANDIDATES", "DEFAULT_SEARCH_CODECS", "parse_search_candidate", "DEFAULT_SEARCH_EPOCHS", "BudgetError", "BudgetRow",
           "BudgetResult", "SearchRow", "parse_candidate", "fit_bytes", "fit_budget", "search_table"]

DEFAULT_CANDIDATES = ("fp32", "fp16", "fp16+fold", "int8+fold") + tuple(f"kmeans{b}+fold" for b in range(8, 1, -1))


class BudgetError(ValueError):
    """No candidate fits the byte budget; ``result`` holds everything that was tried."""

    def __init__(self, message: str, result: "BudgetResult") -> None:
        super().__init__(message)
        self.result = result


def parse_candidate(text: str) -> tuple[Codec, bool]:
    """``"int8+fold"`` -> (int8 codec, fold BatchNorm); ``"fp16"`` -> (fp16 codec, no folding)."""
    name, plus, flag = str(text).strip().partition("+")
    if plus and flag != "fold":
        raise ValueError(f"candidate {text!r}: the only option is '+fold' (e.g. int8+fold)")
    return Codec.parse(name), bool(plus)


@dataclass
class BudgetRow:
    """One candidate written and measured by :func:`fit_bytes`."""

    candidate: str
    size_bytes: int | None          # os.path.getsize of the written file (None: the codec refused the weights)
    val_acc: float | None           # fraction correct on the validation split
    delta_points: float | None      # val_acc - the fp32 model's, in percentage points
    fits: bool
    chosen: bool = False
    note: str = ""                  # why a candidate was refused


@dataclass
class BudgetResult:
    """Every candidate :func:`fit_bytes` tried, the chosen one and where it was written."""

    rows: list[BudgetRow]
    max_bytes: int | None
    best: BudgetRow | None = None
    path: Path | None = None
    fp32_acc: float | None = None

    def table(self) -> str:
        """Plain-text table: candidate, bytes, val accuracy, change vs fp32 (points); '*' marks the choice."""
        lines = [f"{'candidate':<15} {'bytes':>11} {'val acc':>8} {'vs fp32':>8}  fits"]
        for r in self.rows:
            if r.size_bytes is None:
                lines.append(f"  {r.candidate:<13} {'-':>11} {'-':>8} {'-':>8}  no (refused: {r.note[:70]})")
                continue
            acc = f"{100 * r.val_acc:7.2f}%" if r.val_acc is not None else f"{'-':>8}"
            delta = f"{r.delta_points:+8.2f}" if r.delta_points is not None else f"{'-':>8}"
            lines.append(f"{('* ' if r.chosen else '  ') + r.candidate:<15} {r.size_bytes:>11,} {acc} {delta}  "
                         f"{'yes' if r.fits else 'no'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"max_bytes": self.max_bytes, "fp32_acc": self.fp32_acc,
                "path": str(self.path) if self.path else None, "rows": [asdict(r) for r in self.rows]}


def _scorer(data: DataBundle | Split | None, transform) -> Callable[[nn.Module], float] | None:
    if data is None:
        return None
    from compress.train.inference import evaluate

    split = data.val if isinstance(data, DataBundle) else data
    if split is None:
        raise ValueError("fit_bytes: the data have no validation split to score candidates on")
    return lambda m: evaluate(m, split, normalizer=transform)["acc"]


def fit_bytes(model: nn.Module, data: DataBundle | Split | None, max_bytes: int | None, *,
              path: str | os.PathLike | None = None,
              format: str | None = None, candidates: Sequence[str] = DEFAULT_CANDIDATES,
              transform: Callable | None = None, meta: Mapping[str, Any] | None = None,
              compression: str = "auto", tolerance_points: float = 0.0,
              prepared: Mapping[str, tuple[nn.Module, Any]] | None = None) -> BudgetResult:
    """Write the most accurate candidate whose file is at most ``max_bytes`` bytes to ``path``.

    Each candidate (``"fp16+fold"``, ``"kmeans4+fold"``... see :func:`parse_candidate`) is written to a
    temporary file, its size measured with ``os.path.getsize`` (``du --apparent-size``), and the model read
    back from that file scored on ``data``'s validation split (a DataBundle's ``val`` or a Split) with
    ``compress.train.evaluate`` (``transform``: the run's normalizer). The fp32 model is the reference for the
    change in points. The chosen file's bytes are the ones written to ``path``; ties in accuracy go to the
    earlier (less lossy) candidate, and so does any candidate within ``tolerance_points`` (percentage points)
    of the best -- a 400-image split cannot tell apart 0.5 points; with ``data=None`` the first that fits wins.
    ``path=None`` only measures; ``max_bytes=None`` sets no limit (one candidate: write it and measure it).
    ``prepared``: more candidates already made, label -> ``(model, plan)``: a transformed model (pruned, folded,
    fine-tuned) written with its :class:`~compress.quant.Plan` (see :mod:`compress.quant.deep`); they follow
    ``candidates`` in the table and count as the lossiest.
    Raises :class:`BudgetError` (a ValueError) when nothing fits, naming the smallest size reachable.
    """
    import tempfile

    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0):
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if not tolerance_points >= 0 or not math.isfinite(tolerance_points):
        raise ValueError(f"tolerance_points must be >= 0, got {tolerance_points}")
    fmt = format_of(Path(path), format) if path is not None else (format or "npz")
    parsed = [(str(c), *parse_candidate(c)) for c in candidates]
    parsed += [(str(label), None, False) for label in (prepared or {})]
    if not parsed:
        raise ValueError("fit_bytes: no candidates")
    score = _scorer(data, transform)
    foreign = model_spec(model)["kind"] != "compress.models"
    result = BudgetResult([], max_bytes)
    if score is not None:
        result.fp32_acc = score(model)
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix=".fit_bytes.", dir=Path(path).parent if path else None) as tmp:
        for label, codec, fold in parsed:
            file = Path(tmp) / f"candidate.{fmt}"
            try:
                if codec is None:
                    variant, plan = prepared[label]
                    save(variant, file, plan=plan, format=fmt, compression=compression, meta=meta)
                else:
                    save(model, file, codec=codec, fold_bn=fold, format=fmt, compression=compression, meta=meta)
            except ValueError as exc:   # a codec refusing these weights (outliers): the others may still do
                if len(parsed) == 1:
                    raise
                result.rows.append(BudgetRow(label, None, None, None, False, note=str(exc).split(": ")[-1]))
                continue
            size = os.path.getsize(file)
            acc = delta = None
            if score is not None:
                base = prepared[label][0] if codec is None else model
                acc = score(load(file, model=copy.deepcopy(base) if foreign else None))
                delta = 100 * (acc - result.fp32_acc)
            fits = max_bytes is None or size <= max_bytes
            result.rows.append(BudgetRow(label, size, acc, delta, fits))
            if fits:
                blobs[label] = file.read_bytes()
    fitting = [r for r in result.rows if r.fits]
    if not fitting:
        sized = [r for r in result.rows if r.size_bytes is not None]
        if not sized:
            raise BudgetError(f"every candidate refused the weights: {result.rows[0].note}", result)
        smallest = min(sized, key=lambda r: r.size_bytes)
        raise BudgetError(f"no candidate fits {max_bytes:,} bytes: the smallest reachable is "
                          f"{smallest.size_bytes:,} bytes ({smallest.candidate}); use a smaller model "
                          f"(compress fit-budget finds the widest one that fits)", result)
    if score is None:
        best = fitting[0]
    else:
        top = max(r.val_acc for r in fitting)
        best = next(r for r in fitting if 100 * (top - r.val_acc) <= tolerance_points + 1e-9)
    best.chosen, result.best = True, best
    if path is not None:
        path = Path(path)
        _io.write_bytes(path, blobs[best.candidate])
        if os.path.getsize(path) != best.size_bytes or not best.fits:  # pragma: no cover
            raise AssertionError("written artifact differs from the measured candidate")
        result.path = path
    return result


# ---------------------------------------------------------------------------------------------- best model in N bytes
DEFAULT_SEARCH_CODECS = ("fp16+fold", "int8+fold", "kmeans6+fold", "kmeans4+fold")
DEFAULT_SEARCH_EPOCHS = 5   # training epochs per candidate when fit_budget gets no config


@dataclass
class SearchRow:
    """One codec's model in :func:`fit_budget`: how wide it could be, its bytes and accuracy."""

    candidate: str
    width_mult: float | None
    param_count: int | None
    size_bytes: int | None          # the trained model's artifact, os.path.getsize
    val_acc_fp32: float | None      # the trained float32 model
    val_acc: float | None           # the artifact read back
    fits: bool
    run_dir: str | None = None
    chosen: bool = False
    note: str = ""


def search_table(rows: Sequence[SearchRow]) -> str:
    """Plain-text table of :func:`fit_budget`'s rows: candidate, width, params, bytes, fp32 and artifact accuracy,
    whether it fits; '*' marks the choice."""
    lines = [f"{'candidate':<15} {'width':>6} {'params':>9} {'bytes':>9} {'fp32 acc':>9} {'val acc':>8}  fits"]
    for r in rows:
        if r.size_bytes is None:
            lines.append(f"  {r.candidate:<13} {'-':>6} {'-':>9} {'-':>9} {'-':>9} {'-':>8}  "
                         f"no ({r.note.split(':')[0]})")
            continue
        lines.append(f"{('* ' if r.chosen else '  ') + r.candidate:<15} {r.width_mult:6.3f} {r.param_count:>9,} "
                     f"{r.size_bytes:>9,} {100 * r.val_acc_fp32:8.2f}% {100 * r.val_acc:7.2f}%  "
                     f"{'yes' if r.fits else 'no'}")
    return "\n".join(lines)


def parse_search_candidate(text: str) -> tuple[Codec, bool, int | None]:
    """A fit-budget candidate: a whole-model codec (``"int8+fold"``) or ``"deepNx"`` (N from 2 to 64): a model
    sized so that its int8 artifact takes N times the budget, trained, then deep-compressed into the budget
    (large-sparse against small-dense, Zhu & Gupta 2017). Returns ``(codec, fold, N or None)``."""
    import re

    m = re.fullmatch(r"deep(\d+)x", str(text).strip())
    if m is None:
        return (*parse_candidate(text), None)
    growth = int(m.group(1))
    if not 2 <= growth <= 64:
        raise ValueError(f"candidate {text!r}: the growth factor must be from 2 to 64")
    return Codec.parse("int8"), True, growth


def fit_budget(family: str, max_bytes: int, data: Any, *, codecs: Sequence[str] = DEFAULT_SEARCH_CODECS,
               config: Any = None, teacher: Any = None, out: str | os.PathLike | None = None,
               format: str = "npz", progress: Any = False, log: Callable[[str], None] | None = None,
               deep_config: Any = None, **model_kw: Any) -> tuple[SearchRow | None, list[SearchRow]]:
    """The most accurate model of ``family`` whose artifact fits ``max_bytes``: for each candidate codec
    (``"int8+fold"``...), :func:`compress.models.scaling.fit` finds the widest model whose artifact -- stored
    uncompressed, so a deflated file can only be smaller -- fits (``"deepNx"``: N times the budget with int8, then
    :func:`compress.quant.deep_compress` with ``deep_config`` into the budget); it is trained with ``config`` (a
    ``compress.train.TrainConfig``; keep epochs few), optionally distilled from ``teacher`` (a run folder),
    written through the codec, measured on disk and scored on the validation split.

    With ``out`` (a folder): ``runs/<candidate>/`` run folders, ``model.<format>`` (the winner), ``table.json``
    and ``table.csv`` (every candidate). ``progress`` goes to ``train.fit``; ``log`` gets one line per step.
    Returns ``(best row or None, all rows)``; raises :class:`BudgetError`
    when no candidate fits.
    """
    import tempfile

    from compress import train
    from compress.data.sources import load as load_data
    from compress.models import registry, scaling

    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    registry.get_spec(family)   # an unknown family fails here, before any data is loaded or folder written
    for label in codecs:
        parse_search_candidate(label)
    config = config or train.TrainConfig(epochs=DEFAULT_SEARCH_EPOCHS)
    bundle = data if isinstance(data, DataBundle) else load_data(data, seed=config.seed)
    if bundle.val is None or not len(bundle.val):
        raise ValueError(f"{bundle.source}: fit_budget needs a validation split")
    kw = dict(num_classes=bundle.num_classes, in_chans=bundle.in_chans, input_size=bundle.input_size, **model_kw)
    normalizer = Normalizer(bundle.mean, bundle.std, config.normalize)
    meta = {"normalizer": normalizer.to_dict(), "class_names": list(bundle.class_names),
            "data_source": bundle.source}
    out = Path(out) if out is not None else None
    say = log or (lambda line: None)
    rows: list[SearchRow] = []
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix=".fit_budget.") as tmp:
        for label in codecs:
            codec, fold, growth = parse_search_candidate(label)

            def stored_bytes(m: nn.Module, codec=codec, fold=fold) -> int:
                return len(serialize(m, codec=codec, fold_bn=fold, format=format, compression="store", meta=meta))

            try:
                sized = scaling.fit(family, max_bytes=max_bytes * (growth or 1), bytes_fn=stored_bytes, **kw)
            except ValueError as exc:  # even the narrowest model is over budget with this codec
                rows.append(SearchRow(label, None, None, None, None, None, False, note=str(exc)))
                say(f"{label}: nothing fits ({exc})")
                continue
            say(f"{label}: width {sized.width_mult:.3f}, {sized.param_count:,} params, "
                f"{sized.size_bytes:,} bytes stored; training {config.epochs} epochs")
            torch.manual_seed(config.seed)
            model = sized.create()
            run_dir = out / "runs" / label.replace("+", "_") if out is not None else None
            run = train.fit(model, bundle, config, out=run_dir, overwrite=True, teacher=teacher,
                            progress=progress)
            file = Path(tmp) / f"{label}.{format}"
            if growth:
                from compress.quant.deep import deep_compress

                try:
                    deep = deep_compress(run.model, bundle, run.normalizer, max_bytes, deep_config,
                                         measure=lambda m, p: len(serialize(m, plan=p, format=format, meta=meta)),
                                         aug=config.augment_config(bundle.flip_invariant), log=say)
                except ValueError as exc:
                    rows.append(SearchRow(label, sized.width_mult, sized.param_count, None, None, None, False,
                                          note=str(exc)))
                    say(f"{label}: {exc}")
                    continue
                save(deep.model, file, plan=deep.plan, format=format, meta=meta)
            else:
                save(run.model, file, codec=codec, fold_bn=fold, format=format, meta=meta)
            size = os.path.getsize(file)
            acc = train.evaluate(load(file), bundle.val, normalizer=run.normalizer)["acc"]
            acc32 = train.evaluate(run.model, bundle.val, normalizer=run.normalizer)["acc"]
            rows.append(SearchRow(label, sized.width_mult, sized.param_count, size, acc32, acc, size <= max_bytes,
                                  str(run_dir) if run_dir else None))
            blobs[label] = file.read_bytes()
            say(f"{label}: {size:,} bytes, val acc {100 * acc:.2f}% (fp32 {100 * acc32:.2f}%)")
    fitting = [r for r in rows if r.fits]
    best = max(fitting, key=lambda r: r.val_acc) if fitting else None
    if best is not None:
        best.chosen = True
    if out is not None:
        table = [asdict(r) for r in rows]
        _io.write_json(out / "table.json", {"family": family, "max_bytes": max_bytes, "format": format,
                                            "data": bundle.source, "train": asdict(config), "rows": table})
        _io.write_csv(out / "table.csv", table, [f.name for f in fields(SearchRow)])
        if best is not None:
            _io.write_bytes(out / f"model.{format}", blobs[best.candidate])
    if best is None:
        raise BudgetError(f"no candidate of {family} fits {max_bytes:,} bytes with codecs {list(codecs)}",
                          BudgetResult([], max_bytes))
    return best, rows
