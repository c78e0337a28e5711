"""How an int8 ONNX file is calibrated and checked: one settings dataclass for the writer, the check and the int8
latency runtimes."""

from __future__ import annotations

from dataclasses import dataclass

from compress.int8.calibrate import CALIBRATION_METHODS

__all__ = ["Int8Config", "ACTIVATION_TYPES"]

ACTIVATION_TYPES = ("uint8", "int8")     # how activations with negative values are quantized


@dataclass(frozen=True)
class Int8Config:
    """How an int8 ONNX file is calibrated and checked."""

    calibration: str = "minmax"        # activation ranges: minmax | percentile | entropy (compress.int8.calibrate)
    percentile: float = 99.99          # percentile method: share of values (%) inside the range
    calibration_images: int = 512      # training images (count) the activation ranges are taken from
    min_agreement: float = 0.99        # share of predictions (0..1) that must equal the float decode's
    max_drop_points: float = 1.0       # accuracy may fall at most this many points below the float decode
    activations: str = "uint8"         # signed tensors: uint8 (asymmetric) | int8 (symmetric, zero point 0;
                                       # what OpenVINO's int8 kernels take without a zero-point subtraction)

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"unknown calibration {self.calibration!r}; known: {', '.join(CALIBRATION_METHODS)}")
        if self.activations not in ACTIVATION_TYPES:
            raise ValueError(f"unknown activations {self.activations!r}; known: {', '.join(ACTIVATION_TYPES)}")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be at least 1, got {self.calibration_images}")
        if not 0.0 <= self.min_agreement <= 1.0 or self.max_drop_points < 0:
            raise ValueError("min_agreement must be in [0, 1] and max_drop_points >= 0")
