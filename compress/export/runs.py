"""Exporting a trained run folder: the artifact (one codec, or the best that fits a byte budget), its byte
breakdown and optionally an ONNX file; what ``compress export`` runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from compress import _io
from compress.export.artifact import breakdown, format_of, load
from compress.export.budget import DEFAULT_CANDIDATES, BudgetResult, fit_bytes, parse_candidate

__all__ = ["Export", "export_run"]


@dataclass
class Export:
    """What :func:`export_run` wrote: the candidates' table, the file's byte breakdown, the ONNX path."""

    result: BudgetResult
    path: Path
    breakdown: dict[str, int]
    onnx: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "breakdown": self.breakdown, "onnx": str(self.onnx) if self.onnx else None}

    def summary(self) -> str:
        """The candidates' table and one line per file written."""
        b = self.breakdown
        lines = [self.result.table(),
                 f"wrote {self.path}: {b['size_bytes']:,} bytes = weights {b['weights_bytes']:,} + scales/codebooks "
                 f"{b['scales_bytes']:,} + spec/manifest {b['manifest_bytes']:,} + container {b['overhead_bytes']:,}"]
        if self.onnx is not None:
            lines.append(f"wrote {self.onnx}")
        return "\n".join(lines)


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, max_bytes: int | None = None,
               codec: str | None = None, fold_bn: bool = False, candidates: Sequence[str] | None = None,
               tolerance_points: float = 0.0, format: str | None = None,
               onnx: str | os.PathLike | None = None, overwrite: bool = False) -> Export:
    """Write the run at ``run_dir`` as an artifact at ``out`` (default ``RUN/model.npz``).

    With ``max_bytes``: the most accurate of ``candidates`` (default: lossless to lossy, see
    :data:`~compress.export.budget.DEFAULT_CANDIDATES`) whose file fits, scored on the run's validation split
    (:func:`~compress.export.budget.fit_bytes`). Without: ``codec`` (default fp16), BatchNorm folded with
    ``fold_bn``. The manifest keeps the run's input normalization and class names. ``onnx``: also export the
    written model (as reloaded from the file) to that ONNX path. Raises ValueError for settings that contradict
    each other, :class:`~compress.export.budget.BudgetError` when nothing fits. ``out`` and ``onnx`` are checked
    before any work: never one of the run's files, an existing file only with ``overwrite``.
    """
    from compress.export.onnx import export_onnx
    from compress.train.runs import load_run

    if max_bytes is not None and (codec or fold_bn):
        raise ValueError("--codec/--fold-bn choose one codec; --max-bytes searches them (use --candidates)")
    if max_bytes is None and candidates:
        raise ValueError("--candidates needs --max-bytes")
    path = Path(out) if out else Path(run_dir) / f"model.{format or 'npz'}"
    format_of(path, format)   # a suffix that contradicts format fails here, before any work
    run_files = list(Path(run_dir).iterdir()) if Path(run_dir).is_dir() else []
    _io.check_output(path, inputs=run_files, overwrite=overwrite)
    if onnx is not None:
        _io.check_output(onnx, inputs=[*run_files, path], overwrite=overwrite, what="--onnx")
    if max_bytes is None:
        label = (codec or "fp16") + ("+fold" if fold_bn else "")
        parse_candidate(label)
        candidates = [label]
    src = load_run(run_dir)
    meta = {"normalizer": src.normalizer.to_dict(), "class_names": list(src.class_names),
            "data_source": src.data_source, "run": str(src.path)}
    result = fit_bytes(src.model, src.data().val, max_bytes, path=path, format=format,
                       candidates=list(candidates or DEFAULT_CANDIDATES), transform=src.normalizer, meta=meta,
                       tolerance_points=tolerance_points)
    onnx_path = None
    if onnx is not None:
        d = src.info["data"]
        shape = src.card.input_shape if src.card is not None else (d["in_chans"], *d["input_size"])
        onnx_path = export_onnx(load(path), onnx, shape)
    return Export(result, path, breakdown(path), onnx_path)
