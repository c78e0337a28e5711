"""The figures a pruning target and the before/after table use: parameters, MACs, fp16 bytes, latency."""

from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

__all__ = ["FIGURES", "figures", "figure", "render_table"]

FIGURES = ("param_count", "macs", "size_bytes", "latency_ms")


def figure(model: nn.Module, input_shape: Sequence[int], name: str) -> float:
    """One figure of ``model``: ``param_count``; ``macs`` (batch 1, :mod:`compress.profile` conventions);
    ``size_bytes`` (the state_dict written by ``torch.save`` in float16); ``latency_ms`` (median at batch 1,
    one thread, eager, :func:`compress.bench.measure`)."""
    if name == "param_count":
        return sum(p.numel() for p in model.parameters())
    if name == "macs":
        from compress.profile import profile

        return profile(model, tuple(input_shape), serialize=False).macs
    if name == "size_bytes":
        from compress.profile import state_dict_file_bytes

        return state_dict_file_bytes(model)["pt_fp16"]
    if name == "latency_ms":
        from compress.bench import measure   # only when a latency target or column is asked for

        return measure(model, tuple(input_shape), batch_sizes=(1,), threads=1, warmup=5, repeats=30)[0].median_ms
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")


def figures(model: nn.Module, input_shape: Sequence[int], *, latency: bool = False,
            evaluate: Callable[[nn.Module], float] | None = None) -> dict[str, float | None]:
    """Every figure (``latency_ms`` None unless ``latency``; ``acc`` from ``evaluate(model)`` when given)."""
    out = {name: figure(model, input_shape, name) for name in FIGURES[:3]}
    out["latency_ms"] = figure(model, input_shape, "latency_ms") if latency else None
    out["acc"] = float(evaluate(model)) if evaluate is not None else None
    return out


def _fmt(name: str, value) -> str:
    if value is None:
        return "-"
    if name == "acc":
        return f"{value:.4f}"
    if name == "latency_ms":
        return f"{value:.3f}"
    return f"{int(value):,}"


def render_table(before: dict, after: dict) -> str:
    """``figure | before | after | after/before`` rows for the figures both sides have."""
    rows = [("figure", "before", "after", "ratio")]
    for name in (*FIGURES, "acc"):
        b, a = before.get(name), after.get(name)
        if b is None and a is None:
            continue
        ratio = f"{a / b:.3f}" if a is not None and b else "-"
        rows.append((name, _fmt(name, b), _fmt(name, a), ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)
