"""Choosing what to write within a byte budget: the most accurate artifact of a trained model whose file fits.

    choice = choose_artifact(model, bundle, max_bytes=225_000, path="model.npz")   # candidates lossless -> lossy
    print(choice.table())

Candidates are storage configs (:class:`compress.quant.CodecConfig`; the CLI names them ``"int8+fold"``...) and,
from :mod:`compress.export.runs`, Deep Compression's results. Sizes are those of files really written
(``os.path.getsize``, as ``du --apparent-size`` counts them). :func:`artifact_bytes` measures a
:class:`compress.budget.Budget`'s artifact format for the searches that take one.

The choice respects the noise of the validation split (:mod:`compress.evidence`). Every candidate keeps which
validation images it gets right, so two candidates are compared on the same images (paired). Candidates run from
least to most lossy, and a lossier one replaces a less lossy one only when it is better by more than
``tolerance_points`` by the paired rule (:func:`compress.evidence.better`: McNemar's exact test at 5%, and with a
tolerance the lower end of the difference's exact 95% interval above it): the chosen file is the first that fits
and that no other fitting candidate beats that way (:func:`compress.evidence.first_unbeaten`). A difference of a
few images is a tie: on 70 images a lossy file "+5.71 points" ahead of fp32 (4 images) is a tie and is not chosen
over a less lossy one. The table shows each candidate's difference to fp32 with its interval and verdict. A
tolerance the split is too small to resolve (under ``600 / n`` points on ``n`` images) raises one
:class:`compress.evidence.SplitTooSmallWarning` naming the split size it would need.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from torch import nn

from compress import _io
from compress import evidence
from compress.data.bundle import DataBundle, Normalizer, Split, resolve_split
from compress.export.artifact import FORMATS, format_of, read, restore, save, serialize
from compress.quant.api import CodecConfig, PlanConfig, Quantized

__all__ = ["DEFAULT_CANDIDATES", "BudgetError", "Candidate", "ArtifactChoice", "choose_artifact", "artifact_bytes"]

DEFAULT_CANDIDATES = ("fp32", "fp16", "fp16+fold", "int8+fold", "kmeans8+fold", "kmeans7+fold", "kmeans6+fold",
                      "kmeans5+fold", "kmeans4+fold", "kmeans3+fold", "kmeans2+fold")   # lossless to lossy


class BudgetError(ValueError):
    """No candidate fits the byte budget; ``result`` holds everything that was tried."""

    # Any: an ArtifactChoice (choose_artifact) or an export.family.BudgetSearch (train_to_budget, a layer above)
    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class Candidate:
    """One candidate written and measured by :func:`choose_artifact`."""

    candidate: str
    size_bytes: int | None          # os.path.getsize of the written file (None: the codec refused the weights)
    val_acc: float | None           # fraction correct on the validation split
    delta_points: float | None      # val_acc - the fp32 model's, in percentage points (observed)
    fits: bool
    chosen: bool = False
    note: str = ""                  # why a candidate was refused
    delta_low: float | None = None  # exact 95% interval of delta_points, paired on the same images (points)
    delta_high: float | None = None
    vs_fp32: str | None = None      # "tie", "better" or "worse" than fp32 by the paired test (compress.evidence)
    correct: np.ndarray | None = field(default=None, repr=False, compare=False)  # per validation image

    def to_dict(self) -> dict[str, Any]:
        """The fields, without the per-image correctness."""
        return {k: v for k, v in asdict(self).items() if k != "correct"}


@dataclass
class ArtifactChoice:
    """Every candidate :func:`choose_artifact` tried, the chosen one and where it was written."""

    rows: list[Candidate]
    max_bytes: int | None
    best: Candidate | None = None
    path: Path | None = None
    fp32_acc: float | None = None
    val_n: int | None = None            # validation images every candidate was scored on
    tolerance_points: float = 0.0
    warning: str | None = None          # the split is too small for the tolerance (compress.evidence.split_warning)
    fp32_correct: np.ndarray | None = field(default=None, repr=False, compare=False)

    def table(self) -> str:
        """Plain-text table: candidate, bytes, val accuracy, change vs fp32 in points with its paired 95% interval
        and verdict (a difference the split cannot resolve is a tie), whether it fits; '*' marks the choice."""
        lines = [f"{'candidate':<15} {'bytes':>11} {'val acc':>8}  {'vs fp32 [95% interval]':<31}  fits"]
        for r in self.rows:
            if r.size_bytes is None:
                lines.append(f"  {r.candidate:<13} {'-':>11} {'-':>8}  {'-':<31}  no (refused: {r.note[:70]})")
                continue
            acc = f"{100 * r.val_acc:7.2f}%" if r.val_acc is not None else f"{'-':>8}"
            delta = "-"
            if r.delta_points is not None:
                delta = f"{r.delta_points:+.2f} [{r.delta_low:+.2f}, {r.delta_high:+.2f}] {r.vs_fp32}"
            lines.append(f"{('* ' if r.chosen else '  ') + r.candidate:<15} {r.size_bytes:>11,} {acc}  {delta:<31}  "
                         f"{'yes' if r.fits else 'no'}")
        if self.val_n:
            lines.append(f"validation: {self.val_n:,} images; a difference needs >= "
                         f"{evidence.resolvable_points(self.val_n):.2f} points ({evidence.MIN_DISCORDANT} images, "
                         f"all one way) to count (compress.evidence)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"max_bytes": self.max_bytes, "fp32_acc": self.fp32_acc, "val_n": self.val_n,
                "tolerance_points": self.tolerance_points, "warning": self.warning,
                "path": str(self.path) if self.path else None, "rows": [r.to_dict() for r in self.rows]}


def _scorer(data: DataBundle | Split | None, normalizer: Normalizer | None
            ) -> Callable[[nn.Module], np.ndarray] | None:
    """Which validation images a model gets right (:func:`compress.evidence.correct`), or None without data."""
    if data is None:
        return None
    from compress.train.inference import predict

    if isinstance(data, DataBundle) and (data.val is None or not len(data.val)):
        raise ValueError(f"{data.source}: choose_artifact needs a validation split to score candidates on")
    split, normalizer = resolve_split(data, "val", normalizer)
    if not split.labeled or not len(split):
        raise ValueError("choose_artifact needs a labeled, non-empty validation split to score candidates on")
    return lambda m: evidence.correct(predict(m, split.x, normalizer), split.y)


def artifact_bytes(file_format: str, *, meta: Mapping[str, Any] | None = None,
                   compression: str = "auto") -> Callable[[nn.Module], int]:
    """The measuring function of a budget's artifact format (:class:`compress.budget.Budget` ``file_format``):
    ``"npz:int8+fold"`` or ``"pt:fp16"`` (container, then a codec name as :meth:`CodecConfig.parse` reads it).
    ``file_bytes(model)`` is the length of the file :func:`~compress.export.artifact.serialize` writes with
    ``compression`` (``"store"``: an upper bound, a deflated file can only be smaller). Raises ValueError for a
    name of another shape."""
    container, sep, name = str(file_format).partition(":")
    if not sep or container not in FORMATS:
        raise ValueError(f"artifact format {file_format!r}: write CONTAINER:CODEC, e.g. npz:int8+fold (containers: "
                         f"{', '.join(FORMATS)})")
    config = CodecConfig.parse(name)

    def file_bytes(model: nn.Module) -> int:
        return len(serialize(model, config=config, format=container, compression=compression, meta=meta))
    return file_bytes


def choose_artifact(model: nn.Module, data: DataBundle | Split | None, *, max_bytes: int | None,
                    path: str | os.PathLike | None = None, normalizer: Normalizer | None = None,
                    format: str | None = None, candidates: Sequence[str | CodecConfig] = DEFAULT_CANDIDATES,
                    meta: Mapping[str, Any] | None = None, compression: str = "auto",
                    tolerance_points: float = 0.0, prepared: Mapping[str, Quantized] | None = None,
                    save_options: Mapping[str, Any] | None = None) -> ArtifactChoice:
    """Write the most accurate candidate whose file is at most ``max_bytes`` bytes to ``path``.

    Each candidate (a :class:`~compress.quant.CodecConfig` or its name: ``"fp16+fold"``, ``"kmeans4+fold"``...)
    is written to a temporary file, its size measured with ``os.path.getsize`` (``du --apparent-size``), and the
    model read back from that file scored on ``data``'s validation split (a DataBundle's ``val`` or a Split; the
    one way compress takes data, with ``normalizer``, the run's), keeping which images it gets right. The fp32
    model is the reference for the change in points (with its paired 95% interval). The chosen file's bytes are
    the ones written to ``path``: the first candidate that fits and that no other fitting one is better than by
    more than ``tolerance_points`` percentage points by the paired rule (module docstring,
    :func:`compress.evidence.better`), so ties, differences of a few images and differences within the tolerance
    go to the earlier (less lossy) candidate; where the split resolves the difference, the most accurate wins.
    With ``data=None`` the first that fits wins. A ``tolerance_points`` the split cannot resolve warns once
    (:class:`compress.evidence.SplitTooSmallWarning`, also in ``.warning``).
    ``path=None`` only measures; ``max_bytes=None`` sets no limit (one candidate: write it and measure it).
    ``prepared``: more candidates already made, label -> :class:`~compress.quant.Quantized` with a plan (a pruned,
    folded, fine-tuned model from :func:`compress.quant.quantize` with a ``DeepConfig``), written with its plan;
    they follow ``candidates`` in the table and count as the lossiest. ``save_options``: more keywords of
    :func:`~compress.export.artifact.save` for every candidate (``input_shape``, ``normalizer``, ``class_names``,
    ``program``).
    Raises :class:`BudgetError` (a ValueError) when nothing fits, naming the smallest size reachable.
    """
    import tempfile

    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0):
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if not tolerance_points >= 0 or not math.isfinite(tolerance_points):
        raise ValueError(f"tolerance_points must be >= 0, got {tolerance_points}")
    fmt = format_of(Path(path), format) if path is not None else (format or "npz")
    configs = [CodecConfig.parse(c) for c in candidates]
    parsed: list[tuple[str, nn.Module, CodecConfig | PlanConfig]] = [(c.label, model, c) for c in configs]
    for label, made in (prepared or {}).items():
        if not isinstance(made, Quantized) or made.plan is None:
            raise TypeError(f"prepared[{label!r}]: expected a compress.quant.Quantized with a plan, "
                            f"got {type(made).__name__}")
        parsed.append((str(label), made.model, made.storage))
    if not parsed:
        raise ValueError("choose_artifact: no candidates")
    score = _scorer(data, normalizer)
    result = ArtifactChoice([], max_bytes, tolerance_points=float(tolerance_points))
    if score is not None:
        result.fp32_correct = score(model)
        result.fp32_acc, result.val_n = float(result.fp32_correct.mean()), len(result.fp32_correct)
        result.warning = evidence.warn_unresolvable(result.val_n, tolerance_points)
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix=".choose_artifact.", dir=Path(path).parent if path else None) as tmp:
        for label, source, config in parsed:
            file = Path(tmp) / f"candidate.{fmt}"
            try:
                save(source, file, config=config, format=fmt, compression=compression, meta=meta,
                     **dict(save_options or {}))
            except ValueError as exc:   # a codec refusing these weights (outliers): the others may still do
                if len(parsed) == 1:
                    raise
                result.rows.append(Candidate(label, None, None, None, False, note=str(exc).split(": ")[-1]))
                continue
            size = os.path.getsize(file)
            row = Candidate(label, size, None, None, max_bytes is None or size <= max_bytes)
            if score is not None and result.fp32_correct is not None:   # both or neither
                manifest, encoded = read(file)   # weights only: scored in a copy of the model given
                weights_only = manifest["model"]["kind"] not in ("compress.models", "program")
                _compare(row, score(restore(manifest, encoded, model=copy.deepcopy(source) if weights_only else None,
                                            source=file)), result.fp32_correct)
            result.rows.append(row)
            if row.fits:
                blobs[label] = file.read_bytes()
    fitting = [r for r in result.rows if r.fits]
    if not fitting:
        sized = [(r.size_bytes, r) for r in result.rows if r.size_bytes is not None]
        if not sized:
            raise BudgetError(f"every candidate refused the weights: {result.rows[0].note}", result)
        _, smallest = min(sized, key=lambda pair: pair[0])
        raise BudgetError(f"no candidate fits {max_bytes:,} bytes: the smallest reachable is "
                          f"{smallest.size_bytes:,} bytes ({smallest.candidate}); use a smaller model "
                          f"(compress fit-budget finds the widest one that fits)", result)
    best = fitting[0] if score is None else \
        fitting[evidence.first_unbeaten([r.correct for r in fitting], tolerance_points)]
    best.chosen, result.best = True, best
    if path is not None:
        path = Path(path)
        _io.write_bytes(path, blobs[best.candidate])
        if os.path.getsize(path) != best.size_bytes or not best.fits:  # pragma: no cover
            raise AssertionError("written artifact differs from the measured candidate")
        result.path = path
    return result


def _compare(row: Candidate, correct: np.ndarray, reference: np.ndarray) -> None:
    """Fill ``row``'s accuracy and its paired difference to fp32 (``reference``) on the same images."""
    gap = evidence.gap_interval(correct, reference)
    row.correct, row.val_acc = correct, float(correct.mean())
    row.delta_points, row.delta_low, row.delta_high = 100 * gap.diff, 100 * gap.low, 100 * gap.high
    row.vs_fp32 = "better" if evidence.better(correct, reference) else (
        "worse" if evidence.better(reference, correct) else "tie")
