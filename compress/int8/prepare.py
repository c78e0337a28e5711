"""What the int8 latency runtimes run: the int8 numbers to execute and the inputs to calibrate on.

Given an int8 artifact's ``weights`` they run those exactly; given a float model they first apply what
``compress export --codec int8 --fold-bn`` writes (BatchNorm folded, int8 per output channel:
:func:`compress.quant.model.encode_model`) and run that. Activation ranges come from calibration inputs (model
inputs drawn from the data, :func:`compress.data.model_inputs`) or, without any, from N(0, 1) random inputs.
Either way at most ``CALIBRATION_MAX_VALUES`` input values are taken (64 images of 1x512x512, one of 3x4096x4096).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from compress.int8.weights import int8_weights
from compress.models.fold import count_batchnorm, fold_batchnorm
from compress.quant.codecs import Codec
from compress.quant.model import encode_model

__all__ = ["int8_source", "calibration_batch", "RANDOM_CALIBRATION_IMAGES", "CALIBRATION_MAX_VALUES"]

RANDOM_CALIBRATION_IMAGES = 64   # N(0, 1) inputs (count) when no calibration inputs are given
CALIBRATION_MAX_VALUES = 2 ** 24   # input values calibrated on at most (64 MiB of float32)


def int8_source(model: nn.Module, weights: Mapping | None) -> tuple[nn.Module, dict, list[str]]:
    """(float model whose weights are ``q * scale``, ``{name: (q, scale)}``, notes). ``weights`` None: the
    int8+fold codec applied to ``model`` here (a copy; ``model`` is not modified). Raises ValueError when
    ``weights`` are given for a model whose BatchNorm was not folded before quantization."""
    if weights is not None:
        if count_batchnorm(model) != count_batchnorm(fold_batchnorm(model)):
            raise ValueError("int8 execution needs BatchNorm folded before quantization (the stored int8 values "
                             "would change when folding); write the artifact with --codec int8 --fold-bn")
        return model, dict(weights), ["weights: the artifact's int8 values and scales"]
    codec = Codec("int8")
    decoded, encoded = encode_model(model, codec, fold_bn=True)
    return decoded, int8_weights(codec, encoded), [
        "weights: int8 per output channel after BatchNorm folding, as compress export --codec int8 --fold-bn writes"]


def calibration_batch(calibration: torch.Tensor | None, shape: Sequence[int]) -> tuple[torch.Tensor, str]:
    """(model inputs to calibrate on, a note saying what they are): ``calibration`` (model inputs, ``(N, *shape)``)
    or, when None, :data:`RANDOM_CALIBRATION_IMAGES` seeded N(0, 1) inputs; either way at most
    :data:`CALIBRATION_MAX_VALUES` input values' worth of images (at least one). Raises ValueError for a wrong
    shape."""
    most = max(1, CALIBRATION_MAX_VALUES // max(1, math.prod(shape)))
    if calibration is None:
        count = min(RANDOM_CALIBRATION_IMAGES, most)
        gen = torch.Generator().manual_seed(0)
        return (torch.randn(count, *shape, generator=gen),
                f"activation ranges from {count} N(0, 1) random inputs (no calibration images)")
    if not isinstance(calibration, torch.Tensor) or tuple(calibration.shape[1:]) != tuple(shape):
        raise ValueError(f"calibration images must be a tensor of shape (N, {', '.join(map(str, shape))}), "
                         f"got {getattr(calibration, 'shape', type(calibration).__name__)}")
    images = calibration[:most].float().cpu()
    return images, f"activation ranges from {len(images)} calibration images"
