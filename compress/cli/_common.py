"""Small parsing helpers shared by the subcommands."""

from __future__ import annotations

import argparse


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x48x48"`` -> ``(1, 48, 48)``; raises ``argparse.ArgumentTypeError`` on bad input."""
    try:
        dims = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"input shape {text!r} must look like 1x48x48") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"input shape {text!r} must have positive sizes")
    return dims


def parse_int_list(text: str) -> list[int]:
    """``"1,32,256"`` -> ``[1, 32, 256]``."""
    try:
        values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated integers") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive integers")
    return values


def parse_count(text: str) -> int:
    """``"5k"`` -> 5000, ``"1.5M"`` -> 1500000, ``"225000"`` -> 225000."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:] if t else "", 1)
    if scale != 1:
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count like 5k, 1.5M or 225000") from None
    if value <= 0 or value != value:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return int(round(value))


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value
