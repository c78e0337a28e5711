"""The one quantization verb: ``quantize(model, config)``, with each config registered beside its transform.

As torchao's ``quantize_(model, config)``: a config is a small dataclass naming a method, and a handler table
keyed by the config's type applies it, so a new method registers its config and transform
(:func:`register_quantizer`) without touching the verb. Unlike ``quantize_`` the model is not changed in place:
the result holds a new float32 model, bit for bit what a file written with the same config reloads to.

    quantize(model, CodecConfig("int8", fold_bn=True))     # one codec for every tensor (compress.quant.codecs)
    quantize(model, PlanConfig(plan))                      # a codec per layer (compress.quant.plan)
    quantize(model, DeepConfig(), data=bundle, max_bytes=225_000, file_bytes=...)   # Deep Compression

The CLI keeps short names for configs: ``"int8+fold"`` is ``CodecConfig.parse("int8+fold")``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from compress.quant.codecs import Codec
from compress.quant.model import quantize_model
from compress.quant.plan import Plan, quantize_with_plan

__all__ = ["CodecConfig", "PlanConfig", "Quantized", "quantize", "register_quantizer", "QUANTIZERS"]


def _parsed(codec: Codec | str) -> Codec:
    """A :class:`CodecConfig`'s codec, which its ``__post_init__`` parsed (the field also takes a name)."""
    assert isinstance(codec, Codec)
    return codec


@dataclass(frozen=True)
class CodecConfig:
    """One codec for the whole model (:class:`~compress.quant.codecs.Codec`: fp32, fp16, int8, int8-tensor,
    kmeans1..8), with BatchNorm folded into the conv/linear before it first when ``fold_bn``."""

    codec: Codec | str = "fp16"
    fold_bn: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "codec", Codec.parse(self.codec))
        if not isinstance(self.fold_bn, bool):
            raise TypeError(f"CodecConfig: fold_bn must be a bool, got {self.fold_bn!r}")

    @property
    def label(self) -> str:
        """The short name: ``"int8+fold"``, ``"fp16"``, ``"kmeans4+fold"``."""
        return _parsed(self.codec).label + ("+fold" if self.fold_bn else "")

    @classmethod
    def parse(cls, text: "str | CodecConfig") -> "CodecConfig":
        """``"int8+fold"`` -> int8 codec, BatchNorm folded; ``"fp16"`` -> fp16, not folded. Raises ValueError
        naming the text for anything else."""
        if isinstance(text, CodecConfig):
            return text
        name, plus, suffix = str(text).strip().partition("+")
        if plus and suffix != "fold":
            raise ValueError(f"candidate {text!r}: the only option is '+fold' (e.g. int8+fold)")
        return cls(Codec.parse(name), fold_bn=bool(plus))

    def to_dict(self) -> dict[str, Any]:
        return {"codec": _parsed(self.codec).to_json(), "fold_bn": self.fold_bn}


@dataclass(frozen=True)
class PlanConfig:
    """A codec per layer (:class:`~compress.quant.plan.Plan`: mixed bit widths, sparse, entropy coded); the
    plan's layer names are those of the model as given (fold BatchNorm first when the plan expects it)."""

    plan: Plan

    def __post_init__(self) -> None:
        if not isinstance(self.plan, Plan):
            raise TypeError(f"PlanConfig: plan must be a compress.quant.Plan, got {type(self.plan).__name__}")

    @property
    def label(self) -> str:
        return "plan"

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json()}


@dataclass
class Quantized:
    """What :func:`quantize` made: ``model`` (float32, eval mode; bit for bit what a file written with
    ``storage`` reloads to), the ``config`` it came from, and for per-layer methods the ``plan`` and what the
    method measured (Deep Compression: sparsity, file bytes, seconds, its log)."""

    model: nn.Module
    config: Any
    plan: Plan | None = None
    sparsity: float | None = None          # zeros among the planned layers' weights
    target_sparsity: float | None = None   # what pruning aimed at (Deep Compression; 0: not pruned)
    size_bytes: int | None = None          # the file the method measured (Deep Compression)
    seconds: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def storage(self) -> "CodecConfig | PlanConfig":
        """The config to write ``model`` with (``compress.export.save(result.model, path, config=...)``) when it
        is per-layer; a whole-model codec is written from the original model with ``config`` itself."""
        return PlanConfig(self.plan) if self.plan is not None else self.config

    def table(self) -> str:
        """The plan's table (per-layer methods) or one line naming the codec."""
        if self.plan is None:
            return f"codec {self.config.label}: every tensor through it and back (float32 model)"
        head = []
        if self.size_bytes is not None:
            head.append(f"{self.size_bytes:,} bytes, sparsity {self.sparsity or 0:.3f}"
                        + (f", {self.seconds:.0f} s" if self.seconds is not None else ""))
        return "\n".join(head + [self.plan.table()])

    def to_dict(self) -> dict[str, Any]:
        config = self.config.to_dict() if hasattr(self.config, "to_dict") else dataclasses.asdict(self.config)
        return {"method": type(self.config).__name__, "config": config,
                "plan": self.plan.to_json() if self.plan is not None else None, "sparsity": self.sparsity,
                "target_sparsity": self.target_sparsity, "size_bytes": self.size_bytes, "seconds": self.seconds,
                "log": list(self.log)}


QUANTIZERS: dict[type, Callable[..., Quantized]] = {}


def register_quantizer(config_type: type) -> Callable[[Callable[..., Quantized]], Callable[..., Quantized]]:
    """Decorator: ``fn(model, config, **context) -> Quantized`` applies configs of ``config_type``. A type
    registered twice raises."""
    def decorator(fn: Callable[..., Quantized]) -> Callable[..., Quantized]:
        if config_type in QUANTIZERS:
            raise ValueError(f"a quantizer for {config_type.__name__} is already registered")
        QUANTIZERS[config_type] = fn
        return fn
    return decorator


def quantize(model: nn.Module, config: Any, **context: Any) -> Quantized:
    """Apply ``config`` (a :class:`CodecConfig`, :class:`PlanConfig`, :class:`~compress.quant.deep.DeepConfig` or
    any registered config) to a copy of ``model``; ``model`` is not modified. ``context``: what a method needs
    besides the model (Deep Compression: ``data``, ``normalizer``, ``max_bytes``, ``file_bytes``, ``log``).
    Raises TypeError for a non-module or a config type nobody registered (naming those that are)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize: model must be an nn.Module, got {type(model).__name__}")
    handler = QUANTIZERS.get(type(config))
    if handler is None:
        raise TypeError(f"quantize: no quantizer for {type(config).__name__}; registered: "
                        f"{', '.join(t.__name__ for t in QUANTIZERS)}")
    return handler(model, config, **context)


@register_quantizer(CodecConfig)
def _codec(model: nn.Module, config: CodecConfig) -> Quantized:
    return Quantized(quantize_model(model, config.codec, fold_bn=config.fold_bn), config)


@register_quantizer(PlanConfig)
def _plan(model: nn.Module, config: PlanConfig) -> Quantized:
    return Quantized(quantize_with_plan(model, config.plan), config, plan=config.plan)
