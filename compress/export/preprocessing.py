"""What turns images into a model's input, kept with the model: input shape, normalization, class names.

An artifact stores it in ``manifest["preprocessing"]`` (``save(..., input_shape=, normalizer=, class_names=)``;
``compress export`` fills it from the run), so evaluating or predicting with the file needs only data:

    {"input_shape": [1, 48, 48], "normalizer": {"mean": [0.5], "std": [0.25], "enabled": true},
     "class_names": ["angry", "disgust", ...]}

Each field is optional. Artifacts written before it existed kept the normalization and class names in
``manifest["meta"]`` (``compress export`` still writes them there too, for older readers); :meth:`Preprocessing.
of_manifest` reads both. Read from a file, every field is checked (:meth:`Preprocessing.from_json` raises
:class:`~compress.export.manifest.ArtifactError`); given by a user, :meth:`Preprocessing.of` raises
ValueError/TypeError naming the option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from compress.data.bundle import Normalizer
from compress.export.manifest import ArtifactError
from compress.onnx import check_input_shape

__all__ = ["Preprocessing", "MAX_CLASSES", "MAX_CHANNELS"]

MAX_CLASSES = 100_000      # class names a file may list
MAX_CHANNELS = 64          # mean/std entries
_MAX_NAME = 512            # characters in one class name


@dataclass(frozen=True)
class Preprocessing:
    """``input_shape``: one image ``(C, H, W)``; ``normalizer``: the :class:`~compress.data.bundle.Normalizer` the
    model was trained with (uint8 images -> model input); ``class_names``: one per output. None where unknown."""

    input_shape: tuple[int, ...] | None = None
    normalizer: Normalizer | None = None
    class_names: tuple[str, ...] | None = None

    @classmethod
    def of(cls, *, input_shape: Sequence[int] | None = None, normalizer: Normalizer | Mapping | None = None,
           class_names: Sequence[str] | None = None) -> "Preprocessing":
        """From user input: ``normalizer`` a Normalizer or ``{"mean": [...], "std": [...], "enabled": bool}``.
        Raises TypeError/ValueError naming the option."""
        shape = check_input_shape(input_shape) if input_shape is not None else None
        if normalizer is not None and not isinstance(normalizer, Normalizer):
            if not isinstance(normalizer, Mapping):
                raise TypeError(f"normalizer must be a compress.data.Normalizer or a dict with mean and std, "
                                f"got {type(normalizer).__name__}")
            normalizer = _normalizer(normalizer, ValueError, "normalizer")
        if normalizer is not None:
            _check_normalizer(normalizer, shape, ValueError, "normalizer")
        if class_names is not None:
            if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
                raise TypeError("class_names must be a sequence of strings")
            class_names = tuple(class_names)
            if not 1 <= len(class_names) <= MAX_CLASSES or any(len(c) > _MAX_NAME for c in class_names):
                raise ValueError(f"class_names must hold 1 to {MAX_CLASSES} names of at most {_MAX_NAME} characters")
        return cls(shape, normalizer, class_names)

    def to_json(self) -> dict:
        out: dict[str, Any] = {}
        if self.input_shape is not None:
            out["input_shape"] = list(self.input_shape)
        if self.normalizer is not None:
            out["normalizer"] = self.normalizer.to_dict()
        if self.class_names is not None:
            out["class_names"] = list(self.class_names)
        return out

    @classmethod
    def from_json(cls, d: Any, source: Any = "artifact") -> "Preprocessing":
        """The stored entry, checked; ArtifactError naming ``source`` for anything malformed."""
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ArtifactError(f"{source}: preprocessing must be an object, got {type(d).__name__}")
        shape = d.get("input_shape")
        if shape is not None and not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(
                isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 65536 for n in shape)):
            raise ArtifactError(f"{source}: preprocessing input_shape {str(shape)[:60]} must be 1 to 4 sizes")
        shape = tuple(shape) if shape is not None else None
        normalizer = d.get("normalizer")
        if normalizer is not None:
            normalizer = _normalizer(normalizer, ArtifactError, f"{source}: preprocessing normalizer")
            _check_normalizer(normalizer, shape, ArtifactError, f"{source}: preprocessing normalizer")
        names = d.get("class_names")
        if names is not None:
            if not (isinstance(names, list) and 1 <= len(names) <= MAX_CLASSES
                    and all(isinstance(c, str) and len(c) <= _MAX_NAME for c in names)):
                raise ArtifactError(f"{source}: preprocessing class_names must be 1 to {MAX_CLASSES} strings")
            names = tuple(names)
        return cls(shape, normalizer, names)

    @classmethod
    def of_manifest(cls, manifest: Mapping, source: Any = "artifact") -> "Preprocessing":
        """An artifact's preprocessing: its ``preprocessing`` entry, completed from older files' ``meta``
        (``normalizer``, ``class_names``) and from the model card's or program's input shape."""
        own = cls.from_json(manifest.get("preprocessing"), source)
        meta = manifest.get("meta")
        if not isinstance(meta, Mapping):
            meta = {}
        old = cls.from_json({k: meta[k] for k in ("normalizer", "class_names") if k in meta}, f"{source} (meta)")
        shape = own.input_shape or _model_shape(manifest.get("model"))
        return cls(shape, own.normalizer or old.normalizer, own.class_names or old.class_names)


def _normalizer(d: Any, error: type[Exception], where: str) -> Normalizer:
    if not (isinstance(d, Mapping) and isinstance(d.get("mean"), (list, tuple)) and isinstance(d.get("std"), (list, tuple))
            and isinstance(d.get("enabled", True), bool) and set(d) <= {"mean", "std", "enabled"}):
        raise error(f"{where} must be {{'mean': [...], 'std': [...], 'enabled': bool}}, got {str(d)[:120]}")
    return Normalizer(d["mean"], d["std"], d.get("enabled", True))


def _check_normalizer(n: Normalizer, shape: tuple[int, ...] | None, error: type[Exception], where: str) -> None:
    values = list(n.mean) + list(n.std)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise error(f"{where}: mean and std must be finite numbers")
    if len(n.mean) != len(n.std) or len(n.mean) > MAX_CHANNELS or any(s <= 0 for s in n.std):
        raise error(f"{where}: mean and std must have the same length (at most {MAX_CHANNELS}) and std > 0")
    if shape is not None and n.mean and len(n.mean) not in (1, shape[0]):
        raise error(f"{where}: {len(n.mean)} means for {shape[0]} input channels")


def _model_shape(spec: Any) -> tuple[int, ...] | None:
    """The input shape a manifest's model entry implies: its program's, else its card's (create's defaults)."""
    if not isinstance(spec, Mapping):
        return None
    program = spec.get("program")
    if isinstance(program, Mapping) and isinstance(program.get("input_shape"), list):
        return tuple(program["input_shape"])
    card = spec.get("card")
    args = card.get("build_args") if isinstance(card, Mapping) else spec.get("build_args")
    if not isinstance(args, Mapping):
        return None
    size, chans = args.get("input_size", 48), args.get("in_chans", 1)
    if all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in (size, chans)):
        return (chans, size, size)
    return None
