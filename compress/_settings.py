"""The one rule every settings dataclass follows when read from a dict: unknown keys are refused."""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Any, Mapping, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_known(cls: type[T], d: Mapping[str, Any]) -> T:
    """``cls(**d)`` after refusing keys ``cls`` does not have (a typo must not silently fall back to a default)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown settings {unknown} (known: {sorted(known)})")
    return cls(**d)
