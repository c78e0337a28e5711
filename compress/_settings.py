"""The one rule every settings dataclass follows when read from a dict: unknown keys are refused, renamed ones
(:data:`RENAMED`, in files written before the rename) read under their new name."""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

RENAMED = {"num_threads": "threads"}   # old setting name -> new: TrainConfig, SearchConfig, DeepConfig (0.1.0)


def from_known(cls: type[T], d: Mapping[str, Any]) -> T:
    """``cls(**d)`` after refusing keys ``cls`` does not have (a typo must not silently fall back to a default)."""
    known = {f.name for f in fields(cls)}
    d = dict(d)
    for old, new in RENAMED.items():   # a file written before the rename; the new name wins where both are
        if old in d and old not in known and new in known:
            d.setdefault(new, d.pop(old))
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {unknown} (known: {sorted(known)})")
    return cls(**d)
