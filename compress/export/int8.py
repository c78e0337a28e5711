"""An int8 artifact as a QDQ ONNX file: its stored int8 weights, activations calibrated on the data's training
split, checked against the artifact's float decode on the data's evaluation split before the file is moved into
place. What ``compress export RUN --onnx F --int8`` runs; the pieces are :mod:`compress.int8`'s. Streamed data
(:class:`~compress.data.torch_data.TorchData`) calibrates on the first images drawn from its training data and is
checked batch by batch: its evaluation split is never held whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress import _io
from compress.data import DataBundle, Normalizer, Split, model_inputs, resolve_split
from compress.data.torch_data import StreamSplit, TorchData
from compress.export.artifact import read, restore
from compress.int8.calibrate import calibration_batch_size
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


def export_int8_artifact(artifact: str | os.PathLike, path: str | os.PathLike, data: DataBundle | Split | TorchData, *,
                         normalizer: Normalizer | None = None, config: Int8Config = Int8Config()) -> Int8Result:
    """The int8 artifact at ``artifact`` as a QDQ ONNX file at ``path``, checked before it is moved into place.

    ``data`` (a ``DataBundle``, a ``Split`` or streamed :class:`~compress.data.torch_data.TorchData`) and
    ``normalizer`` (the run's; default the data's own) the one way (:func:`compress.data.model_inputs`): ``config.calibration_images`` images of its training split (drawn with
    seed 0) calibrate the activations, and its default split to evaluate on (test when labeled, else val) checks
    the file against the artifact's float decode (:func:`compress.int8.check_int8`). Raises ValueError when the
    artifact's codec has no int8 execution path (naming those that do) or its BatchNorm was not folded before
    quantization, TypeError for ``data`` of another type, and :class:`Int8CheckError` when the check fails
    (nothing is written then).
    """
    manifest, encoded = read(artifact)
    weights = int8_weights(manifest["codec"], encoded, source=str(artifact))
    split: Split | StreamSplit
    shape: tuple[int, ...]
    if isinstance(data, TorchData):
        if normalizer is None:
            data.prepare(calibration_batch_size(data.train.first()[0].shape))   # the statistics, one pass
        split, normalize = data.split(), normalizer or data.normalizer
        calibration = data.model_inputs(config.calibration_images, normalizer=normalize, split="train", seed=0)
        shape = (data.in_chans, *data.image_hw)
    else:
        split, normalize = resolve_split(data, None, normalizer)
        calibration = model_inputs(data, config.calibration_images, normalizer=normalize, split="train", seed=0)
        shape = tuple(split.x.shape[1:])
    model = restore(manifest, encoded, source=artifact)
    with _io.atomic_path(path) as tmp:
        export = export_int8_onnx(model, weights, tmp, shape, calibration, config=config)
        try:
            if isinstance(split, StreamSplit):
                check = _check_streamed(tmp, model, split, normalize, config, calibration_batch_size(shape, 256))
            else:
                check = check_int8(tmp, model, normalize(split.x), split.y, config=config)
        except Int8CheckError as exc:   # name the file the user asked for, not the temporary one
            raise Int8CheckError(str(exc).replace(str(tmp), str(path))) from None
    export.path = Path(path)
    return Int8Result(export, check)


def _check_streamed(path: Path, model, split: StreamSplit, normalize, config: Int8Config, batch_size: int) -> Int8Check:
    """:func:`check_int8` over a streamed split, batch by batch, its counts summed; failing as it fails."""
    images, same, int8_right, float_right = 0, 0.0, 0.0, 0.0
    for x, y in split.batches(batch_size):
        part = check_int8(path, model, normalize(x), y, config=config, raise_on_failure=False)
        images += part.images
        same += part.agreement * part.images
        int8_right += part.int8_accuracy * part.images
        float_right += part.float_accuracy * part.images
    result = Int8Check(images, same / images, int8_right / images, float_right / images, passed=False)
    # the rule and message of check_int8, applied to the whole split's counts
    result.passed = (result.agreement >= config.min_agreement
                     and result.float_accuracy - result.int8_accuracy <= config.max_drop_points)
    if not result.passed:
        raise Int8CheckError(f"{path}: {result.summary()}; needs >= {100 * config.min_agreement:g}% and at most "
                             f"{config.max_drop_points:g} points lower (try the other calibration method)")
    return result
