"""``prune(model, config)``: the one verb. Graph -> importance -> selection -> surgery, in ``steps``.

One settings dataclass (:class:`PruneConfig`) and one entry point, as torchao's ``quantize_(model, config)``;
unlike ``quantize_`` it returns a new model (in a :class:`PruneResult`) and leaves the given one untouched,
because the pruned model has other shapes and the caller usually wants both for the before/after table.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from compress.models.card import card_of
from compress.prune.graph import build_graph
from compress.prune.importance import IMPORTANCES, importance
from compress.prune.measure import figure, figures, render_table
from compress.prune.schedule import SCHEDULES, fraction_at, select, step_ratio
from compress.prune.surgery import remove_channels
from compress._settings import from_known

__all__ = ["PruneConfig", "PruneResult", "prune", "TARGETS"]

TARGETS = {"max_params": "param_count", "max_macs": "macs", "max_bytes": "size_bytes",
           "max_latency_ms": "latency_ms"}
_SEARCH_STEPS = 16          # bisection steps on the channel ratio for a budget: 1/65536 resolution


@dataclass
class PruneConfig:
    """How to prune. Give exactly one target: ``ratio`` or one or more budgets (all must hold)."""

    ratio: float | None = None            # share of channels removed, in (0, 1) (per group, or overall if global)
    max_params: float | None = None       # parameters
    max_macs: float | None = None         # multiply-accumulates at batch 1
    max_bytes: float | None = None        # bytes of the state_dict saved with torch.save in float16
    max_latency_ms: float | None = None   # median ms at batch 1, one thread, eager (measured: noisy, slow)
    importance: str = "l1"                # "l1" | "l2" | "bn" | "taylor" | "random"
    global_ranking: bool = False          # one ranking over all layers instead of the same ratio per layer
    round_to: int = 1                     # kept widths rounded down to a multiple of this (8 suits hardware)
    min_width: int = 1                    # channels every group keeps at least
    steps: int = 1                        # prune in this many steps (fine-tuning after each, if asked)
    schedule: str = "linear"              # "linear" | "agp" (Zhu & Gupta 2017 cubic) share of the target per step
    finetune_epochs: int = 0              # epochs of fine-tuning after each step (prune_run / the CLI)
    taylor_images: int = 512              # training images the taylor importance takes gradients on
    seed: int = 0                         # random importance; fine-tuning seed

    def __post_init__(self) -> None:
        budgets = {k: getattr(self, k) for k in TARGETS if getattr(self, k) is not None}
        if (self.ratio is None) == (not budgets):
            raise ValueError("PruneConfig: give either ratio or a budget (max_params, max_macs, max_bytes, "
                             "max_latency_ms)" + (", not both" if budgets else ""))
        if self.ratio is not None and (isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float))
                                       or not 0 < self.ratio < 1):
            raise ValueError(f"PruneConfig: ratio must be in (0, 1), got {self.ratio!r}")
        for k, v in budgets.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"PruneConfig: {k} must be a positive number, got {v!r}")
        if self.importance not in IMPORTANCES:
            raise ValueError(f"PruneConfig: unknown importance {self.importance!r}; known: "
                             f"{', '.join(sorted(IMPORTANCES))}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"PruneConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for k, low in (("round_to", 1), ("min_width", 1), ("steps", 1), ("finetune_epochs", 0),
                       ("taylor_images", 1)):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"PruneConfig: {k} must be an int >= {low}, got {v!r}")

    @property
    def budgets(self) -> dict[str, float]:
        """``{figure name: budget}`` of the budgets given."""
        return {TARGETS[k]: getattr(self, k) for k in TARGETS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PruneConfig":
        """Rejects unknown keys."""
        return from_known(cls, d)


@dataclass
class PruneResult:
    """The pruned model, its figures before and after, one row per step, and what the graph pinned."""

    model: nn.Module
    before: dict
    after: dict
    steps: list[dict]
    graph: str                                  # the first step's graph, described
    unknown: dict[str, int] = field(default_factory=dict)

    def table(self) -> str:
        return render_table(self.before, self.after)

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "steps": self.steps, "graph": self.graph,
                "unknown": self.unknown}


def _input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    if input_shape is None:
        card = card_of(model)
        if card is None:
            raise ValueError("prune: pass input_shape=(C, H, W) for a model not made by compress.models.create")
        return tuple(card.input_shape)
    return tuple(input_shape)


def _with_card(original: nn.Module, pruned: nn.Module) -> nn.Module:
    """A model made by ``compress.models.create`` keeps a card whose ``widths`` rebuild the pruned shapes."""
    card = card_of(original)
    if card is None:
        return pruned
    from compress.models import create
    from compress.models.widths import layer_widths, width_changes

    base = {k: v for k, v in card.build_args.items() if k != "widths"}
    with torch.device("meta"):
        reference = create(**base)
    widths = width_changes(layer_widths(reference), layer_widths(pruned))
    pruned.card = card.replace(build_args={**base, **({"widths": widths} if widths else {})})
    return pruned


def _step(model: nn.Module, shape: tuple[int, ...], config: PruneConfig, ratio: float | None,
          targets: dict[str, float], batches) -> tuple[nn.Module, float, Any]:
    """One step: the model without the channels a ratio (or the smallest ratio meeting ``targets``) removes."""
    graph = build_graph(model, shape)
    scores = importance(graph, config.importance, batches=batches, seed=config.seed)
    pick = lambda r: remove_channels(graph, select(graph, scores, r, global_ranking=config.global_ranking,  # noqa: E731
                                                   round_to=config.round_to, min_width=config.min_width))
    if ratio is not None:
        return pick(ratio), ratio, graph
    meets = lambda m: all(figure(m, shape, k) <= v for k, v in targets.items())  # noqa: E731
    if meets(model):                 # already within this step's budget: nothing goes (still a new model)
        return remove_channels(graph, set()), 0.0, graph
    lo, hi = 0.0, 1 - 1e-9
    best = pick(hi)
    if not meets(best):
        raise ValueError("budget below the smallest reachable model: with every layer at min_width="
                         f"{config.min_width} it has " + ", ".join(
                             f"{k}={figure(best, shape, k):,.6g}" for k in targets) + "; budget: " + ", ".join(
                             f"{k}<={v:,.6g}" for k, v in targets.items()))
    for _ in range(_SEARCH_STEPS):
        mid = (lo + hi) / 2
        candidate = pick(mid)
        if meets(candidate):
            hi, best = mid, candidate
        else:
            lo = mid
    return best, hi, graph


def _check_forward(model: nn.Module, shape: tuple[int, ...], out_shape: torch.Size) -> None:
    p = next(iter(model.parameters()), None)
    x = torch.zeros((2, *shape), device=p.device if p is not None else "cpu")
    was = model.training
    model.eval()
    with torch.no_grad():
        y = model(x)
    model.train(was)
    assert y.shape == out_shape, f"pruned model's output {tuple(y.shape)} != {tuple(out_shape)}"


def prune(model: nn.Module, config: PruneConfig | None = None, *, input_shape: Sequence[int] | None = None,
          batches: Sequence | None = None, finetune: Callable[[nn.Module, int], nn.Module | None] | None = None,
          evaluate: Callable[[nn.Module], float] | None = None, latency: bool = False,
          **settings: Any) -> PruneResult:
    """Prune ``model``'s channels for real; returns a :class:`PruneResult` whose ``.model`` is a new, smaller
    ``nn.Module`` (``model`` itself is not modified).

    ``config`` or keyword settings (``prune(model, ratio=0.5, importance="bn")``; keywords override the config).
    ``input_shape``: one example ``(C, H, W)``; defaults to the model card's. ``batches``: (images, labels)
    pairs for the ``taylor`` importance (a list: every step reads it). ``finetune(model, step)``: called after
    each step, may return a new model. ``evaluate(model) -> accuracy`` and ``latency=True`` add those columns
    to the before/after figures. A model from :func:`compress.models.create` keeps a card that rebuilds the
    pruned architecture (``compress.models.rebuild(card)``, run folders, artifacts).

    Raises ValueError for bad settings, a forward that fails on ``input_shape``, a model whose BatchNorm was
    folded, or a budget below the smallest reachable model; TypeError for a non-module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prune: model must be an nn.Module, got {type(model).__name__}")
    if config is not None and not isinstance(config, PruneConfig):
        raise TypeError(f"prune: config must be a PruneConfig, got {type(config).__name__}")
    if settings or config is None:
        base = dataclasses.asdict(config) if config is not None else {}
        config = PruneConfig.from_dict({**base, **settings})
    card = card_of(model)
    if card is not None and card.bn_folded:
        raise ValueError("prune: this model's BatchNorm is folded; prune the unfolded model, then fold")
    shape = _input_shape(model, input_shape)
    first = build_graph(model, shape)       # fails early, with one line, on a forward that does not run
    if not first.groups:
        raise ValueError("prune: nothing to prune: every channel is pinned" +
                         (f" (by {', '.join(first.unknown)})" if first.unknown else ""))
    out_shape = _output_shape(model, shape)
    before = figures(model, shape, latency=latency, evaluate=evaluate)
    start = {k: before[k] if before.get(k) is not None else figure(model, shape, k) for k in config.budgets}
    rows, current = [], model
    for k in range(1, config.steps + 1):
        frac = fraction_at(k, config.steps, config.schedule)
        ratio = step_ratio(config.ratio, k, config.steps, config.schedule) if config.ratio is not None else None
        targets = {n: start[n] + (b - start[n]) * frac for n, b in config.budgets.items()}
        current, used, _ = _step(current, shape, config, ratio, targets, batches)
        current = _with_card(model, current)
        _check_forward(current, shape, out_shape)
        if finetune is not None:
            current = finetune(current, k) or current
        row = {"step": k, "ratio": used, **figures(current, shape, latency=latency and k == config.steps,
                                                   evaluate=evaluate if k == config.steps else None)}
        rows.append(row)
    after = {n: rows[-1][n] for n in (*before.keys(),)}
    return PruneResult(current, before, after, rows, first.describe(), dict(first.unknown))


def _output_shape(model: nn.Module, shape: tuple[int, ...]) -> torch.Size:
    p = next(iter(model.parameters()), None)
    was = model.training
    model.eval()
    with torch.no_grad():
        y = model(torch.zeros((2, *shape), device=p.device if p is not None else "cpu"))
    model.train(was)
    return y.shape
