"""Exporting a trained run folder: the artifact (one codec, or the best that fits a byte budget), its byte
breakdown and optionally an ONNX file; what ``compress export`` runs.

With a byte budget the candidates are the whole-model codecs (:data:`~compress.export.choice.DEFAULT_CANDIDATES`)
and, when those lose more than ``deep_points`` (by the paired rule of :mod:`compress.evidence`: a loss the
validation split cannot resolve is no loss) or nothing fits (``deep="auto"``), two per-layer candidates made by
:mod:`compress.quant.deep` on the run's own data: ``mixed`` (per-layer codecs chosen by sensitivity within the
budget, no training; tried only when the budget needs no pruning) and ``deep`` (pruned as far as the budget needs,
mixed precision, fine-tuned, entropy coded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from compress import _io, evidence
from compress.export.artifact import breakdown, format_of, load, read, serialize
from compress.export.choice import DEFAULT_CANDIDATES, ArtifactChoice, BudgetError, choose_artifact
from compress.export.int8 import export_int8_artifact
from compress.int8 import INT8_CODECS, Int8Config
from compress.provenance import provenance
from compress.quant.api import CodecConfig, Quantized, quantize
from compress.quant.codecs import Codec
from compress.quant.deep import DeepConfig

__all__ = ["DEEP_MODES", "Export", "export_run", "run_meta"]

DEEP_MODES = ("auto", "on", "off")


@dataclass
class Export:
    """What :func:`export_run` wrote: the candidates' table, the file's byte breakdown, the ONNX path, and for a
    per-layer candidate its plan and how entropy coding compares with deflate."""

    result: ArtifactChoice
    path: Path
    breakdown: dict[str, int]
    onnx: Path | None = None
    int8: Any = None      # compress.int8.Int8Check of an --int8 ONNX file
    plan: Any = None      # compress.quant.Plan of the written file, if it has one
    entropy: dict[str, int] | None = None
    deep_log: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "breakdown": self.breakdown, "onnx": str(self.onnx) if self.onnx else None,
                "int8_check": self.int8.to_dict() if self.int8 is not None else None,
                "plan": self.plan.to_json() if self.plan is not None else None, "entropy": self.entropy}

    def summary(self) -> str:
        """The candidates' table, the plan (if any) and one line per file written."""
        b = self.breakdown
        lines = [self.result.table()]
        if self.plan is not None:
            lines += ["", self.plan.table(), ""]
        if self.entropy and self.entropy["packed_bytes"]:
            e = self.entropy
            lines.append(f"entropy coding: quantized values and sparse indices {e['stored_bytes']:,} bytes "
                         f"(Huffman where smaller) vs {e['deflate_bytes']:,} bytes with deflate "
                         f"({e['packed_bytes']:,} bit-packed)")
        indices = f" + sparse indices {b['indices_bytes']:,}" if b.get("indices_bytes") else ""
        lines.append(f"wrote {self.path}: {b['size_bytes']:,} bytes = weights {b['weights_bytes']:,} + "
                     f"scales/codebooks {b['scales_bytes']:,}{indices} + spec/manifest {b['manifest_bytes']:,} + "
                     f"container {b['overhead_bytes']:,}")
        if self.onnx is not None:
            lines.append(f"wrote {self.onnx}" + (f" (int8 QDQ; {self.int8.summary()})" if self.int8 else ""))
        return "\n".join(lines)


def _needs_deep(model, data, max_bytes, candidates, normalizer, meta, fmt, deep_points, options) -> bool:
    """Whether no whole-model candidate fits within ``deep_points`` of the fp32 accuracy: nothing fits, or fp32
    is better than the chosen one by more than ``deep_points`` by the paired rule
    (:func:`compress.evidence.within`), so a loss of a few validation images never starts Deep Compression."""
    try:
        result = choose_artifact(model, data, max_bytes=max_bytes, format=fmt, candidates=candidates,
                                 normalizer=normalizer, meta=meta, save_options=options)
    except BudgetError:
        return True
    best = result.best
    assert best is not None   # choose_artifact raises BudgetError when nothing fits
    if result.fp32_correct is None:   # pragma: no cover - a run always has a validation split here
        assert best.delta_points is not None   # a candidate that fits was measured
        return best.delta_points < -deep_points
    assert best.correct is not None   # measured on the split fp32_correct comes from
    return not evidence.within(best.correct, result.fp32_correct, deep_points)


def _deep_candidates(src, bundle, max_bytes, config, meta, fmt, log, options) -> tuple[dict, list[str]]:
    def file_bytes(model, plan) -> int:
        return len(serialize(model, plan=plan, format=fmt, meta=meta, **options))

    aug = src.config.augment_config(bundle.flip_invariant)
    prepared: dict[str, Quantized] = {}
    lines: list[str] = []
    for label, cfg in (("deep", config), ("mixed", replace(config, sparsity=0.0, finetune_epochs=0.0))):
        if label == "mixed" and "deep" in prepared and (prepared["deep"].target_sparsity or 0) > 0:
            lines.append("mixed: skipped (the budget needs pruning, so a dense per-layer plan is not tried)")
            if log:
                log(lines[-1])
            continue
        try:
            r = quantize(src.model, cfg, data=bundle, normalizer=src.normalizer, max_bytes=max_bytes,
                         file_bytes=file_bytes, aug=aug, log=log)
        except ValueError as exc:
            lines.append(f"{label}: {exc}")
            if log:
                log(f"{label}: {exc}")
            continue
        prepared[label] = r
        lines += [f"{label}: {line}" for line in r.log] + [f"{label}: {r.seconds:.0f} s"]
    # candidates in the table from least to most lossy
    return {k: prepared[k] for k in ("mixed", "deep") if k in prepared}, lines


def run_meta(run) -> dict[str, Any]:
    """What an artifact made from ``run`` (a :class:`compress.train.Run`) keeps in ``manifest["meta"]``: its
    normalizer and class names (where readers before the preprocessing entry look for them), its data source and
    folder, and the provenance of the code and of the data the run was trained on, as hashed then. Every command
    that writes artifacts of a run (export, search) calls it."""
    recorded = run.info.get("provenance") if isinstance(run.info, dict) else None
    return {"normalizer": run.normalizer.to_dict(), "class_names": list(run.class_names),
            "data_source": run.data_source, "run": str(run.path) if run.path else None,
            "provenance": provenance(recorded.get("data") if isinstance(recorded, dict) else None, compact=True)}


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, max_bytes: int | None = None,
               codec: str | None = None, fold_bn: bool = False, candidates: Sequence[str] | None = None,
               tolerance_points: float = 0.0, format: str | None = None,
               onnx: str | os.PathLike | None = None, overwrite: bool = False, int8: bool = False,
               calibration: str = Int8Config.calibration, int8_activations: str = Int8Config.activations,
               deep: str = "auto", deep_points: float = 1.0,
               deep_config: DeepConfig | None = None, onnx_normalize: bool = False,
               log: Callable[[str], None] | None = None) -> Export:
    """Write the run at ``run_dir`` as an artifact at ``out`` (default ``RUN/model.npz``).

    With ``max_bytes``: the most accurate of ``candidates`` (default: lossless to lossy, see
    :data:`~compress.export.choice.DEFAULT_CANDIDATES`) whose file fits, scored on the run's validation split
    (:func:`~compress.export.choice.choose_artifact`: a lossier file replaces a less lossy one only when it is
    better by more than ``tolerance_points`` by the paired rule of :mod:`compress.evidence`; a tolerance the split
    cannot resolve warns once, :class:`compress.evidence.SplitTooSmallWarning`). ``deep``: ``"on"`` adds the
    per-layer candidates ``mixed`` and ``deep`` (module docstring; fine-tuned on the run's training data with
    ``deep_config``), ``"auto"`` adds them only when no whole-model candidate fits within ``deep_points``
    percentage points of fp32 by the same paired rule, ``"off"`` never
    (nor with ``int8``, whose ONNX path needs a whole-model int8 file); ``log`` gets their progress lines.
    Without: ``codec`` (default fp16), BatchNorm folded with
    ``fold_bn``. The file keeps the run's input shape, normalization and class names (its preprocessing, read
    back with :func:`compress.export.describe`; a model without a registered family's card is stored as a
    program). ``onnx``: also export the
    written model (as reloaded from the file) to that ONNX path, with the same preprocessing in its metadata
    and, with ``onnx_normalize``, the normalization as the graph's first nodes (the file then takes images
    scaled to [0, 1]); with ``int8`` as an int8 QDQ graph of the
    file's stored int8 weights, activations calibrated (``calibration``: minmax, percentile or entropy) on the run's
    training images, those with negative values in ``int8_activations`` (uint8, or int8: symmetric, for OpenVINO) and checked against the file's float decode on its test split
    (:func:`~compress.export.int8.export_int8_artifact`). Raises ValueError for settings that contradict
    each other or a codec without an int8 path, :class:`~compress.export.choice.BudgetError` when nothing fits.
    ``out`` and ``onnx`` are checked before any work: never one of the run's files, an existing file only with
    ``overwrite``.
    """
    from compress.onnx import export_onnx, onnx_metadata, write_onnx_metadata
    from compress.quant.layer_codecs import entropy_report
    from compress.quant.plan import Plan
    from compress.train.runs import load_run

    if max_bytes is not None and (codec or fold_bn):
        raise ValueError("--codec/--fold-bn choose one codec; --max-bytes searches them (use --candidates)")
    if max_bytes is None and candidates:
        raise ValueError("--candidates needs --max-bytes")
    if int8 and onnx is None:
        raise ValueError("--int8 writes the ONNX file int8: give --onnx PATH")
    if onnx_normalize and (onnx is None or int8):
        raise ValueError("--onnx-normalize puts the normalization into the float ONNX file: give --onnx PATH "
                         "without --int8")
    if deep not in DEEP_MODES:
        raise ValueError(f"deep must be one of {DEEP_MODES}, got {deep!r}")
    if deep_points < 0:
        raise ValueError(f"deep_points must be >= 0, got {deep_points}")
    int8_config = Int8Config(calibration=calibration, activations=int8_activations)
    path = Path(out) if out else Path(run_dir) / f"model.{format or 'npz'}"
    fmt = format_of(path, format)   # a suffix that contradicts format fails here, before any work
    run_files = list(Path(run_dir).iterdir()) if Path(run_dir).is_dir() else []
    _io.check_output(path, inputs=run_files, overwrite=overwrite)
    if onnx is not None:
        _check_distinct(path, onnx)   # before any work: the ONNX file would replace the artifact just written
        _io.check_output(onnx, inputs=[*run_files, path], overwrite=overwrite, what="--onnx")
    if max_bytes is None:
        candidates = [CodecConfig(codec or "fp16", fold_bn=bool(fold_bn)).label]
    if int8:
        candidates = list(candidates or [c for c in DEFAULT_CANDIDATES if _int8_path(c)])
        bad = [c for c in candidates if not _int8_path(c)]
        no_path = [c for c in bad if Codec.parse(CodecConfig.parse(c).codec).label not in INT8_CODECS]
        if no_path:
            raise ValueError(f"--int8: codec {', '.join(no_path)} has no int8 execution path; supported: "
                             f"{', '.join(INT8_CODECS)} with BatchNorm folded (--codec int8 --fold-bn)")
        if bad:
            raise ValueError(f"--int8: {', '.join(bad)} quantizes before BatchNorm folding, which would change the "
                             "stored int8 values; add --fold-bn (int8+fold)")
    src = load_run(run_dir)
    meta = run_meta(src)
    d = src.info["data"]
    shape = tuple(src.card.input_shape) if src.card is not None else (d["in_chans"], *d["input_size"])
    options = {"input_shape": shape, "normalizer": src.normalizer, "class_names": list(src.class_names)}
    bundle = src.data()
    candidates = list(candidates or DEFAULT_CANDIDATES)
    prepared, lines = None, None
    if max_bytes is not None and deep != "off" and not int8 and (
            deep == "on" or _needs_deep(src.model, bundle, max_bytes, candidates, src.normalizer, meta, fmt,
                                        deep_points, options)):
        prepared, lines = _deep_candidates(src, bundle, max_bytes, deep_config or DeepConfig(), meta, fmt, log,
                                           options)
    result = choose_artifact(src.model, bundle, max_bytes=max_bytes, path=path, format=format, candidates=candidates,
                             normalizer=src.normalizer, meta=meta, tolerance_points=tolerance_points,
                             prepared=prepared, save_options=options)
    onnx_path, check = None, None
    if onnx is not None and int8:
        onnx_path = Path(onnx)
        check = export_int8_artifact(path, onnx_path, bundle, normalizer=src.normalizer, config=int8_config).check
        write_onnx_metadata(onnx_path, onnx_metadata(shape, normalizer=src.normalizer, class_names=src.class_names))
    elif onnx is not None:
        onnx_path = export_onnx(load(path), onnx, shape, normalizer=src.normalizer, class_names=src.class_names,
                                include_normalizer=onnx_normalize)
    manifest, encoded = read(path)
    plan = Plan.from_json(manifest["plan"]) if "plan" in manifest else None
    return Export(result, path, breakdown(path), onnx_path, check, plan,
                  entropy_report(encoded) if plan is not None else None, lines)


def _check_distinct(out: Path, onnx: str | os.PathLike) -> None:
    """Refuse ``--onnx`` naming the artifact's own path (``--out``), whether or not that file exists yet, even
    with ``overwrite``: one output would destroy the other."""
    onnx = Path(onnx)
    if onnx.resolve() == out.resolve() or (onnx.exists() and out.exists() and os.path.samefile(onnx, out)):
        raise ValueError(f"--onnx {str(onnx)!r} is the artifact's path (--out {str(out)!r}): the ONNX file would "
                         "replace the artifact. Give them different paths")


def _int8_path(candidate: str) -> bool:
    """Whether ``candidate`` (``int8+fold``...) writes an artifact the int8 ONNX export can run as stored: an
    int8 codec applied after BatchNorm folding (folding afterwards would change the stored values)."""
    config = CodecConfig.parse(candidate)
    return Codec.parse(config.codec).label in INT8_CODECS and config.fold_bn
