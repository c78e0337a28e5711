"""An int8 artifact as a QDQ ONNX file: its stored int8 weights, activations calibrated on the data's training
split, checked against the artifact's float decode on the data's evaluation split before the file is moved into
place. What ``compress export RUN --onnx F --int8`` runs; the pieces are :mod:`compress.int8`'s."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress import _io
from compress.data import DataBundle, Normalizer, Split, model_inputs, resolve_split
from compress.export.artifact import read, restore
from compress.int8.check import Int8Check, Int8CheckError, check_int8
from compress.int8.config import Int8Config
from compress.int8.weights import int8_weights
from compress.int8.writer import Int8Export, export_int8_onnx

__all__ = ["Int8Result", "export_int8_artifact"]


@dataclass
class Int8Result:
    """What :func:`export_int8_artifact` wrote (``export``: the file, its weights and calibration) and how it
    compared with the float decode (``check``)."""

    export: Int8Export
    check: Int8Check

    @property
    def path(self) -> Path:
        return self.export.path

    def to_dict(self) -> dict[str, Any]:
        return {**self.export.to_dict(), "check": self.check.to_dict()}

    def table(self) -> str:
        """One line per fact: the file, its weights and calibration, and the check."""
        return "\n".join([f"wrote {self.path}", *self.export.notes(), self.check.summary()])

    summary = table


def export_int8_artifact(artifact: str | os.PathLike, path: str | os.PathLike, data: DataBundle | Split, *,
                         normalizer: Normalizer | None = None, config: Int8Config = Int8Config()) -> Int8Result:
    """The int8 artifact at ``artifact`` as a QDQ ONNX file at ``path``, checked before it is moved into place.

    ``data`` (a ``DataBundle`` or ``Split``) and ``normalizer`` (the run's; default the data's own) the one way
    (:func:`compress.data.model_inputs`): ``config.calibration_images`` images of its training split (drawn with
    seed 0) calibrate the activations, and its default split to evaluate on (test when labeled, else val) checks
    the file against the artifact's float decode (:func:`compress.int8.check_int8`). Raises ValueError when the
    artifact's codec has no int8 execution path (naming those that do) or its BatchNorm was not folded before
    quantization, TypeError for ``data`` of another type, and :class:`Int8CheckError` when the check fails
    (nothing is written then).
    """
    manifest, encoded = read(artifact)
    weights = int8_weights(manifest["codec"], encoded, source=str(artifact))
    split, normalize = resolve_split(data, None, normalizer)
    calibration = model_inputs(data, config.calibration_images, normalizer=normalize, split="train", seed=0)
    model = restore(manifest, encoded, source=artifact)
    shape = tuple(split.x.shape[1:])
    with _io.atomic_path(path) as tmp:
        export = export_int8_onnx(model, weights, tmp, shape, calibration, config=config)
        try:
            check = check_int8(tmp, model, normalize(split.x), split.y, config=config)
        except Int8CheckError as exc:   # name the file the user asked for, not the temporary one
            raise Int8CheckError(str(exc).replace(str(tmp), str(path))) from None
    export.path = Path(path)
    return Int8Result(export, check)
