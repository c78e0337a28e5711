"""The accuracy check an int8 ONNX file must pass before it is written: its predictions against the float decode's."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
from torch import nn

from compress.int8.config import Int8Config
from compress.onnx import INPUT_NAME, ort_session_options, require_onnxruntime

__all__ = ["Int8Check", "Int8CheckError", "check_int8"]


class Int8CheckError(ValueError):
    """The int8 file's predictions disagree with the float decode beyond :class:`Int8Config`'s limits."""


@dataclass
class Int8Check:
    """Predictions of the int8 ONNX file against the float decode on one labeled split."""

    images: int
    agreement: float            # share (0..1) of images where both predict the same class
    int8_accuracy: float        # percent
    float_accuracy: float       # percent
    passed: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (f"int8 vs float decode on {self.images} images: {100 * self.agreement:.2f}% same predictions, "
                f"accuracy {self.int8_accuracy:.2f}% vs {self.float_accuracy:.2f}% "
                f"({self.int8_accuracy - self.float_accuracy:+.2f} points)")


def check_int8(path: str | os.PathLike, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               config: Int8Config = Int8Config(), raise_on_failure: bool = True) -> Int8Check:
    """Run the int8 file at ``path`` and the float ``model`` on inputs ``x`` (normalized) with labels ``y``;
    passed when the predictions agree on at least ``config.min_agreement`` of the images and accuracy falls by
    at most ``config.max_drop_points``. Raises :class:`Int8CheckError` (a ValueError) when it fails, unless
    ``raise_on_failure`` is False."""
    from compress.train.inference import logits

    ort = require_onnxruntime()
    session = ort.InferenceSession(str(path), ort_session_options(ort, threads=1), providers=["CPUExecutionProvider"])
    x = x.detach().float().cpu()
    int8_pred = torch.cat([torch.from_numpy(session.run(None, {INPUT_NAME: x[i:i + 256].numpy()})[0])
                           for i in range(0, len(x), 256)]).argmax(1)
    float_pred = logits(model, x).argmax(1)
    y = y.cpu()
    result = Int8Check(len(y), (int8_pred == float_pred).float().mean().item(),
                       100 * (int8_pred == y).float().mean().item(), 100 * (float_pred == y).float().mean().item(),
                       passed=False)
    result.passed = (result.agreement >= config.min_agreement
                     and result.float_accuracy - result.int8_accuracy <= config.max_drop_points)
    if raise_on_failure and not result.passed:
        raise Int8CheckError(f"{path}: {result.summary()}; needs >= {100 * config.min_agreement:g}% and at most "
                             f"{config.max_drop_points:g} points lower (try the other calibration method)")
    return result
