"""Architectures as data: small frozen dataclasses read by one builder (:mod:`compress.models.builder`).

A convolutional network is a :class:`ConvNetSpec` of :class:`Stage` rows; a perceptron is an :class:`MLPSpec`.
Named fields, not strings or long positional rows.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BLOCKS", "Stage", "ConvNetSpec", "MLPSpec"]

BLOCKS = ("conv", "dws", "sep", "ir")


@dataclass(frozen=True)
class Stage:
    """One stage: ``repeats`` blocks of one kind; only the first block has ``stride``.

    block: ``"conv"`` (ConvNormAct), ``"dws"`` (MobileNetV1 depthwise-separable), ``"sep"`` (Keras
    SeparableConv2D: no norm/act between depthwise and pointwise, pointwise bias), ``"ir"`` (MobileNetV2
    inverted residual). ``pool``: 2x2 ``"max"``/``"avg"`` pooling after the stage. ``padding``:
    ``"same"`` or ``"valid"`` (Keras). ``order``: ``"norm_act"`` or ``"act_norm"``.
    """

    block: str
    out_chans: int
    repeats: int = 1
    stride: int = 1
    kernel: int = 3
    expansion: float = 1.0      # ir only: hidden = round(in_chans * expansion)
    se_ratio: float = 0.0       # ir only: squeeze-excite width as a fraction of hidden
    pool: str | None = None
    norm: bool = True
    act: bool = True
    bias: bool | None = None    # None: bias only without norm
    padding: str = "same"
    order: str = "norm_act"
    dropout: float = 0.0        # after the stage

    def __post_init__(self) -> None:
        if self.block not in BLOCKS:
            raise ValueError(f"Stage.block must be one of {BLOCKS}, got {self.block!r}")
        if self.padding not in ("same", "valid"):
            raise ValueError(f"Stage.padding must be 'same' or 'valid', got {self.padding!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"Stage.stride must be 1 or 2, got {self.stride!r}")


@dataclass(frozen=True)
class ConvNetSpec:
    """A convolutional network: stem (never depth-scaled), stages, optional 1x1 head conv, pooling,
    optional hidden Linear layers, classifier.

    head_fixed: the head width is not scaled below width 1 (MobileNetV2 keeps 1280 channels).
    pool: ``"avg"`` (global average) or ``"flatten"``. divisor: channel rounding (1 = exact counts).
    """

    stem: Stage | None
    stages: tuple[Stage, ...]
    head_chans: int | None = None
    head_fixed: bool = False
    pool: str = "avg"
    hidden: tuple[int, ...] = ()
    hidden_norm: bool = True
    hidden_order: str = "norm_act"
    hidden_dropout: float = 0.0
    hidden_act: str | None = None   # None: same as act
    act: str = "relu"
    dropout: float = 0.0            # before the classifier
    divisor: int = 8


@dataclass(frozen=True)
class MLPSpec:
    """Flatten -> hidden MLPBlocks -> classifier."""

    hidden: tuple[int, ...] = (512, 256, 128)
    norm: bool = True
    act: str = "relu"
    order: str = "norm_act"
    hidden_dropout: float = 0.0
    dropout: float = 0.0
    divisor: int = 8

