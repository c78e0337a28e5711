"""Training settings: one dataclass, defaults with units; the CLI reads its defaults from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from compress.data.augment import AugmentConfig
from compress._settings import from_known

__all__ = ["TrainConfig"]


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class TrainConfig:
    epochs: float = 30                        # passes over the training split; a fraction ends the last one early
    batch_size: int = 128                     # images per optimizer step
    optimizer: str = "adamw"                  # "adamw" | "sgd" (Nesterov, momentum 0.9)
    lr: float = 1e-2                          # peak learning rate (AdamW; small nets from scratch like it high)
    schedule: str = "cosine"                  # "cosine" | "onecycle" | "constant", stepped per batch
    weight_decay: float = 5e-4                # decoupled for AdamW, L2 for SGD
    label_smoothing: float = 0.0
    augment: bool = True                      # master switch for all augmentation below
    flip: bool | None = None                  # None: on unless the data are flip-sensitive (digits)
    rotate_deg: float = 10.0                  # +- degrees
    translate_frac: float = 0.1               # +- fraction of the image side
    scale_range: tuple[float, float] = (0.9, 1.1)
    erase_prob: float = 0.0                   # random erasing probability per image
    normalize: bool = True                    # False: raw 0..255 pixel values go in
    seed: int = 0
    device: str = "auto"                      # "cpu" | "cuda" | "auto"
    amp: bool = True                          # bfloat16 autocast, CUDA only
    ema_decay: float | None = None            # e.g. 0.999: evaluate and keep an exponential moving average
    patience: int | None = None               # stop after this many epochs without a better val accuracy
    min_delta: float = 0.0                    # a gain (accuracy, fraction) must exceed this to reset patience
    threads: int | None = None            # CPU threads during fit (restored afterwards)
    eval_batch_size: int = 1024
    bn_recalibrate: int = 2048                # training images (no augmentation) to re-estimate BatchNorm statistics
                                              # before each evaluation ("precise BN"); 0 = off
    channels_last: bool = True                # NHWC weights and batches while training: ~1.7x faster convs
                                              # on CPU here; the model is returned in the default layout
    teacher: str | None = None                # run folder of a teacher model (or pass teacher= to fit)
    temperature: float = 4.0                  # distillation temperature T
    alpha: float = 0.5                        # loss = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T)

    def __post_init__(self):
        self._check_types()
        self.scale_range = tuple(float(v) for v in self.scale_range)
        checks = [
            (self.epochs > 0, "epochs must be > 0"),
            (self.batch_size >= 2, "batch_size must be >= 2"),
            (self.optimizer in ("adamw", "sgd"), f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}"),
            (self.schedule in ("cosine", "onecycle", "constant"),
             f"schedule must be 'cosine', 'onecycle' or 'constant', got {self.schedule!r}"),
            (self.lr > 0, "lr must be > 0"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
             f"device must be 'cpu', 'cuda' or 'auto', got {self.device!r}"),
            (self.ema_decay is None or 0 < self.ema_decay < 1, "ema_decay must be in (0, 1)"),
            (self.patience is None or self.patience >= 1, "patience must be >= 1"),
            (0 <= self.min_delta < 1, "min_delta must be in [0, 1) (an accuracy gain)"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1 image, got {self.eval_batch_size}"),
            (self.bn_recalibrate >= 0, "bn_recalibrate must be >= 0 images"),
            (self.temperature > 0, "temperature must be > 0"),
            (0 <= self.alpha <= 1, "alpha must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainConfig: {message}")
        self.augment_config(True)  # validates the augmentation settings

    def _check_types(self) -> None:
        """Every field has its type and is finite (``--set lr=abc``, ``lr=Infinity``, ``seed=1e20``,
        ``scale_range=5`` are refused here, naming the field, before any work)."""
        for f in fields(self):
            value, kind = getattr(self, f.name), _KINDS.get(f.name)
            optional = f.name in _OPTIONAL
            if kind is None or (value is None and optional):   # a field added without a kind is left unchecked
                continue
            if kind is bool:
                ok = isinstance(value, bool)
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif kind is float:
                ok = _is_real(value) and math.isfinite(value)
            elif kind is tuple:
                ok = (isinstance(value, (tuple, list)) and len(value) == 2
                      and all(_is_real(v) and math.isfinite(v) for v in value))
            else:
                ok = isinstance(value, str)
            if not ok:
                what = {bool: "true or false", int: "an integer", float: "a finite number",
                        tuple: "two finite numbers [low, high]", str: "a string"}[kind]
                raise ValueError(f"TrainConfig: {f.name} must be {what}{' or null' if optional else ''}, "
                                 f"got {value!r}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"TrainConfig: seed must be in [0, 2**63), got {self.seed}")
        if self.threads is not None and not 0 <= self.threads <= 4096:
            raise ValueError(f"TrainConfig: threads must be in [0, 4096] (0: torch's choice), "
                             f"got {self.threads}")
        if not 0 <= self.rotate_deg <= 180:
            raise ValueError(f"TrainConfig: rotate_deg must be in [0, 180] degrees, got {self.rotate_deg}")

    def augment_config(self, flip_default: bool) -> AugmentConfig | None:
        if not self.augment:
            return None
        return AugmentConfig(flip=flip_default if self.flip is None else self.flip, rotate_deg=self.rotate_deg,
                             translate_frac=self.translate_frac, scale_range=self.scale_range,
                             erase_prob=self.erase_prob)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Rejects unknown keys (a typo must not silently fall back to a default)."""
        return from_known(cls, d)


_KINDS = {"epochs": float, "batch_size": int, "optimizer": str, "lr": float, "schedule": str, "weight_decay": float,
          "label_smoothing": float, "augment": bool, "flip": bool, "rotate_deg": float, "translate_frac": float,
          "scale_range": tuple, "erase_prob": float, "normalize": bool, "seed": int, "device": str, "amp": bool,
          "ema_decay": float, "patience": int, "threads": int, "eval_batch_size": int, "bn_recalibrate": int,
          "channels_last": bool, "teacher": str, "temperature": float, "alpha": float, "min_delta": float}
_OPTIONAL = {"flip", "ema_decay", "patience", "threads", "teacher"}
