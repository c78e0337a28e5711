"""The most accurate model of a family in N bytes: each codec's widest model that fits, trained and measured.

    search = train_to_budget("mobilenet_v1", "default", max_bytes=225_000)   # what ``compress fit-budget`` runs
    print(search.table())

Each candidate is a storage config (:class:`compress.quant.CodecConfig`, named ``"int8+fold"``...) or ``"deepNx"``
(large-sparse against small-dense, Deep Compression into the budget). Sizes are files really written.

The choice respects the noise of the validation split as ``compress export --max-bytes`` does
(:mod:`compress.export.choice`, :mod:`compress.evidence`): every candidate keeps which validation images its
artifact gets right, and a later candidate in ``codecs`` replaces an earlier one only when it is better by more
than ``tolerance_points`` by the paired rule (McNemar's exact test at 5%; with a tolerance, the lower end of the
difference's exact 95% interval above it). The chosen one is the first that fits and that no other fitting
candidate beats that way: two models a few validation images apart are a tie, and the earlier codec (the default
list runs from least to most lossy) keeps it.
"""

from __future__ import annotations

import os
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from compress import _io, evidence
from compress.data.bundle import DataBundle, Normalizer
from compress.export.artifact import FORMATS, load, save, serialize
from compress.export.choice import BudgetError, artifact_bytes
from compress.quant.api import CodecConfig

__all__ = ["DEFAULT_SEARCH_CODECS", "DEFAULT_SEARCH_EPOCHS", "SizedCandidate", "BudgetSearch", "train_to_budget",
           "parse_search_candidate"]

DEFAULT_SEARCH_CODECS = ("fp16+fold", "int8+fold", "kmeans6+fold", "kmeans4+fold")
DEFAULT_SEARCH_EPOCHS = 5   # training epochs per candidate when train_to_budget gets no config


@dataclass
class SizedCandidate:
    """One codec's model in :func:`train_to_budget`: how wide it could be, its bytes and accuracy."""

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
    val_low: float | None = None    # Wilson 95% interval of val_acc (compress.evidence.wilson)
    val_high: float | None = None
    val_n: int = 0
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)  # per validation image

    def to_dict(self) -> dict[str, Any]:
        """The fields, without the per-image correctness."""
        return {k: v for k, v in asdict(self).items() if k != "correct"}


_COLUMNS = [f.name for f in fields(SizedCandidate) if f.name != "correct"]


@dataclass
class BudgetSearch:
    """What :func:`train_to_budget` tried: one row per candidate, the chosen one (None when nothing fit)."""

    family: str
    max_bytes: int
    format: str
    rows: list[SizedCandidate]
    best: SizedCandidate | None = None
    tolerance_points: float = 0.0
    warning: str | None = None          # the split is too small for the tolerance (compress.evidence.split_warning)

    def table(self) -> str:
        """Plain-text table: candidate, width, params, bytes, fp32 and artifact accuracy with its 95% interval,
        the paired difference to the chosen one, whether it fits; '*' marks the choice."""
        return _table(self.rows, self.best)

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "max_bytes": self.max_bytes, "format": self.format,
                "tolerance_points": self.tolerance_points, "warning": self.warning,
                "best": self.best.candidate if self.best else None, "rows": [r.to_dict() for r in self.rows]}


def _table(rows: Sequence[SizedCandidate], best: SizedCandidate | None) -> str:
    lines = [f"{'candidate':<15} {'width':>6} {'params':>9} {'bytes':>9} {'fp32 acc':>9} {'val acc [95%]':>22}  "
             f"{'vs chosen [95%]':<24}  fits"]
    for r in rows:
        if r.size_bytes is None:
            lines.append(f"  {r.candidate:<13} {'-':>6} {'-':>9} {'-':>9} {'-':>9} {'-':>22}  {'-':<24}  "
                         f"no ({r.note.split(':')[0]})")
            continue
        # measured (it has bytes): accuracies and interval set together
        assert r.val_acc is not None and r.val_low is not None and r.val_high is not None and r.val_acc_fp32 is not None
        acc = f"{100 * r.val_acc:6.2f}% [{100 * r.val_low:.1f}, {100 * r.val_high:.1f}]"
        vs = "-"
        if best is not None and r is not best and r.correct is not None and best.correct is not None:
            vs = evidence.gap_interval(r.correct, best.correct).points()
        lines.append(f"{('* ' if r.chosen else '  ') + r.candidate:<15} {r.width_mult:6.3f} {r.param_count:>9,} "
                     f"{r.size_bytes:>9,} {100 * r.val_acc_fp32:8.2f}% {acc:>22}  {vs:<24}  "
                     f"{'yes' if r.fits else 'no'}")
    n = next((r.val_n for r in rows if r.val_n), 0)
    if n:
        lines.append(f"validation: {n:,} images; a difference needs >= {evidence.resolvable_points(n):.2f} points "
                     f"({evidence.MIN_DISCORDANT} images, all one way) to count (compress.evidence)")
    return "\n".join(lines)


def parse_search_candidate(text: str) -> tuple[CodecConfig, int | None]:
    """A fit-budget candidate: a whole-model codec (``"int8+fold"``) or ``"deepNx"`` (N from 2 to 64): a model
    sized so that its int8 artifact takes N times the budget, trained, then deep-compressed into the budget
    (large-sparse against small-dense, Zhu & Gupta 2017). Returns ``(storage config, N or None)``."""
    import re

    m = re.fullmatch(r"deep(\d+)x", str(text).strip())
    if m is None:
        return CodecConfig.parse(text), None
    growth = int(m.group(1))
    if not 2 <= growth <= 64:
        raise ValueError(f"candidate {text!r}: the growth factor must be from 2 to 64")
    return CodecConfig.parse("int8+fold"), growth


def train_to_budget(family: str, data: Any, *, max_bytes: int, codecs: Sequence[str] = DEFAULT_SEARCH_CODECS,
                    config: Any = None, teacher: Any = None, out: str | os.PathLike | None = None,
                    format: str = "npz", progress: Any = False, log: Callable[[str], None] | None = None,
                    deep_config: Any = None, tolerance_points: float = 0.0, **model_kw: Any) -> BudgetSearch:
    """The most accurate model of ``family`` whose artifact fits ``max_bytes``: for each candidate codec
    (``"int8+fold"``...), :func:`compress.models.scaling.scale_to` finds the widest model whose artifact -- stored
    uncompressed, so a deflated file can only be smaller -- fits (the budget's format ``"FORMAT:CODEC"``, measured by
    :func:`~compress.export.choice.artifact_bytes`; ``"deepNx"``: N times the budget with int8, then Deep Compression
    with ``deep_config`` into the budget, :func:`compress.quant.quantize`); it is trained with ``config`` (a
    ``compress.train.TrainConfig``; keep epochs few), optionally distilled from ``teacher`` (a run folder),
    written through the codec, measured on disk and scored on the validation split. ``data``: a DataBundle or a
    source for :func:`compress.data.load`. The chosen candidate is the first of ``codecs`` that fits and that no
    other fitting one is better than by more than ``tolerance_points`` percentage points by the paired rule of
    :mod:`compress.evidence` (module docstring): differences of a few validation images are ties. A
    ``tolerance_points`` the validation split cannot resolve warns once
    (:class:`compress.evidence.SplitTooSmallWarning`, also in ``.warning``) before any training.

    With ``out`` (a folder): ``runs/<candidate>/`` run folders, ``model.<format>`` (the winner), ``table.json``
    and ``table.csv`` (every candidate). ``progress`` goes to ``train.fit``; ``log`` gets one line per step.
    Returns a :class:`BudgetSearch` (``.best``, ``.rows``, ``.table()``); raises :class:`BudgetError` (its
    ``search`` holds the rows) when no candidate fits.
    """
    import tempfile

    from compress import train
    from compress.budget import Budget
    from compress.data.sources import load as load_data
    from compress.models import registry, scaling

    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(tolerance_points, bool) or not isinstance(tolerance_points, (int, float)) or not (
            math.isfinite(tolerance_points) and tolerance_points >= 0):
        raise ValueError(f"tolerance_points must be a finite number >= 0, got {tolerance_points!r}")
    from compress.models.sources import is_external

    if not is_external(family):   # a file/torchvision/timm model fails at its first build, before training
        registry.get_spec(family)   # an unknown family fails here, before any data is loaded or folder written
    for label in codecs:
        parse_search_candidate(label)
    config = config or train.TrainConfig(epochs=DEFAULT_SEARCH_EPOCHS)
    bundle = data if isinstance(data, DataBundle) else load_data(data, seed=config.seed)
    if bundle.val is None or not len(bundle.val):
        raise ValueError(f"{bundle.source}: train_to_budget needs a validation split")
    warning = evidence.warn_unresolvable(len(bundle.val), tolerance_points)
    kw = dict(num_classes=bundle.num_classes, in_chans=bundle.in_chans, input_size=bundle.input_size, **model_kw)
    normalizer = Normalizer(bundle.mean, bundle.std, config.normalize)
    meta = {"normalizer": normalizer.to_dict(), "class_names": list(bundle.class_names),
            "data_source": bundle.source}
    out = Path(out) if out is not None else None
    say = log or (lambda line: None)
    rows: list[SizedCandidate] = []
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix=".train_to_budget.") as tmp:
        for label in codecs:
            storage, growth = parse_search_candidate(label)
            budget = Budget(max_bytes=max_bytes * (growth or 1), file_format=f"{format}:{storage.label}")
            try:
                sized = scaling.scale_to(family, budget, file_bytes=artifact_bytes(budget.file_format, meta=meta,
                                                                                  compression="store"), **kw)
            except ValueError as exc:  # even the narrowest model is over budget with this codec
                rows.append(SizedCandidate(label, None, None, None, None, None, False, note=str(exc)))
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
                from compress.quant import DeepConfig, quantize

                try:
                    deep = quantize(run.model, deep_config or DeepConfig(), data=bundle, normalizer=run.normalizer,
                                    max_bytes=max_bytes, aug=config.augment_config(bundle.flip_invariant), log=say,
                                    file_bytes=lambda m, p: len(serialize(m, plan=p, format=format, meta=meta)))
                except ValueError as exc:
                    rows.append(SizedCandidate(label, sized.width_mult, sized.param_count, None, None, None, False,
                                               note=str(exc)))
                    say(f"{label}: {exc}")
                    continue
                save(deep.model, file, config=deep.storage, format=format, meta=meta)
            else:
                save(run.model, file, config=storage, format=format, meta=meta)
            size = os.path.getsize(file)
            correct = evidence.correct(train.predict(load(file), bundle.val.x, run.normalizer), bundle.val.y)
            acc, n = float(correct.mean()), len(correct)
            acc32 = train.evaluate(run.model, bundle.val, normalizer=run.normalizer)["acc"]
            rows.append(SizedCandidate(label, sized.width_mult, sized.param_count, size, acc32, acc,
                                       size <= max_bytes, str(run_dir) if run_dir else None,
                                       val_low=evidence.wilson(acc, n)[0], val_high=evidence.wilson(acc, n)[1],
                                       val_n=n, correct=correct))
            blobs[label] = file.read_bytes()
            say(f"{label}: {size:,} bytes, val acc {100 * acc:.2f}% (fp32 {100 * acc32:.2f}%)")
    fitting = [r for r in rows if r.fits]
    best = fitting[evidence.first_unbeaten([r.correct for r in fitting], tolerance_points)] if fitting else None
    search = BudgetSearch(family, max_bytes, format, rows, best, float(tolerance_points), warning)
    if search.best is not None:
        search.best.chosen = True
    if out is not None:
        table = [r.to_dict() for r in rows]
        _io.write_json(out / "table.json", {"family": family, "max_bytes": max_bytes, "format": format,
                                            "data": bundle.source, "train": asdict(config),
                                            "tolerance_points": tolerance_points, "rows": table})
        _io.write_csv(out / "table.csv", table, _COLUMNS)
        if search.best is not None:
            _io.write_bytes(out / f"model.{format}", blobs[search.best.candidate])
    if search.best is None:
        raise BudgetError(f"no candidate of {family} fits {max_bytes:,} bytes with codecs {list(codecs)}", search)
    return search
