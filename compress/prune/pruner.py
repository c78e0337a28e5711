"""``prune(model, config)``: the one verb. Graph -> importance -> selection -> surgery, in ``steps``.

One settings dataclass (:class:`PruneConfig`) and one entry point, as torchao's ``quantize_(model, config)``;
unlike ``quantize_`` it returns a new model (in a :class:`PruneResult`) and leaves the given one untouched,
because the pruned model has other shapes and the caller usually wants both for the before/after table.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, cast

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from compress.budget import QUANTITIES, Budget, bisect, format_quantity
from compress.data.bundle import DataBundle, Normalizer, Split, resolve_split
from compress.data.torch_data import TorchData
from compress.models.card import card_of
from compress.prune.graph import DependencyGraph, build_graph, check_paths
from compress.prune.importance import IMPORTANCES, importance
from compress.prune.measure import Meter
from compress.prune.schedule import SCHEDULES, fraction_at, select
from compress.prune.surgery import copy_module, remove_channels
from compress.prune.trace import output_tensors, run_meta
from compress._settings import from_known

__all__ = ["PruneConfig", "PruneResult", "prune"]

_SEARCH_STEPS = 16          # bisection steps on the channel ratio for a budget: 1/65536 resolution
_LEGACY_LIMITS = ("max_params", "max_macs", "max_bytes", "max_latency_ms")   # PruneConfig fields before Budget


@dataclass
class PruneConfig:
    """How to prune. Give exactly one target: ``ratio`` or a ``budget`` with limits (every one must hold). A budget
    without limits beside a ratio only says how the before/after table measures bytes and latency."""

    ratio: float | None = None            # share of channels removed, in (0, 1) (per group, or overall if global)
    budget: Budget | None = None          # limits the pruned model meets (compress.budget: params, MACs, bytes, ms)
    importance: str = "l1"                # "l1" | "l2" | "bn" | "taylor" | "random"
    global_ranking: bool = False          # one ranking over all layers instead of the same ratio per layer
    round_to: int = 1                     # kept widths rounded down to a multiple of this (8 suits hardware)
    min_width: int = 1                    # channels every group keeps at least
    steps: int = 1                        # prune in this many steps (fine-tuning after each, if asked)
    schedule: str = "linear"              # "linear" | "agp" (Zhu & Gupta 2017 cubic) share of the target per step
    finetune_epochs: int = 0              # epochs of fine-tuning after each step (prune_run / the CLI)
    taylor_images: int = 512              # training images the taylor importance takes gradients on
    seed: int = 0                         # random importance; fine-tuning seed
    ignored_layers: list[str] = field(default_factory=list)      # module paths whose channels stay (and below)
    layer_ratios: dict[str, float] = field(default_factory=dict)  # module path -> its groups' ratio, in [0, 1)
    prune_embedding: bool = False         # also a transformer's embedding width (the channels into attention)

    def __post_init__(self) -> None:
        if isinstance(self.budget, Mapping):
            self.budget = Budget.from_dict(self.budget)
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise TypeError(f"PruneConfig: budget must be a compress.budget.Budget, got {type(self.budget).__name__}")
        limited = self.budget is not None and bool(self.budget.limits)
        if (self.ratio is None) == (not limited):
            raise ValueError("PruneConfig: give either ratio or a budget (compress.budget.Budget: max_params, "
                             "max_macs, max_bytes, max_latency_ms)" + (", not both" if limited else ""))
        if self.ratio is not None and (isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float))
                                       or not math.isfinite(self.ratio) or not 0 < self.ratio < 1):
            raise ValueError(f"PruneConfig: ratio must be in (0, 1), got {self.ratio!r}")
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
        if isinstance(self.ignored_layers, str) or not isinstance(self.ignored_layers, (list, tuple)) or not all(
                isinstance(p, str) and p for p in self.ignored_layers):
            raise TypeError(f"PruneConfig: ignored_layers must be a list of module paths, got {self.ignored_layers!r}")
        self.ignored_layers = list(self.ignored_layers)
        if not isinstance(self.layer_ratios, Mapping):
            raise TypeError(f"PruneConfig: layer_ratios must be a dict of module path -> ratio, "
                            f"got {self.layer_ratios!r}")
        for path, r in self.layer_ratios.items():
            if not isinstance(path, str) or not path:
                raise TypeError(f"PruneConfig: layer_ratios keys must be module paths, got {path!r}")
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or not 0 <= r < 1:
                raise ValueError(f"PruneConfig: layer_ratios[{path!r}] must be in [0, 1), got {r!r}")
        self.layer_ratios = {k: float(v) for k, v in self.layer_ratios.items()}
        if not isinstance(self.prune_embedding, bool):
            raise TypeError(f"PruneConfig: prune_embedding must be True or False, got {self.prune_embedding!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PruneConfig":
        """Rejects unknown keys. A config stored before budgets were one :class:`Budget` (flat ``max_params`` ...
        keys, bytes of a float16 ``.pt``: the Budget's default format) still reads."""
        d = dict(d)
        legacy = {k: d.pop(k) for k in _LEGACY_LIMITS if k in d}
        if any(v is not None for v in legacy.values()):
            if d.get("budget") is not None:
                raise ValueError("PruneConfig: give budget or the older max_* keys, not both")
            d["budget"] = Budget(**legacy)
        return from_known(cls, d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class PruneResult:
    """The pruned model, its quantities (``param_count``, ``macs``, ``size_bytes``, ``latency_ms``, ``acc``)
    before and after, one row per step, and what the graph pinned.

    Quantities that need no timing or evaluation are measured when first read (``before``, ``after``,
    ``steps``, ``table()``, ``to_dict()``), on the given model and on ``model``: a prune whose table nobody reads
    pays nothing for it."""

    def __init__(self, model: nn.Module, before: dict | Callable[[], dict], steps: list[dict | Callable[[], dict]],
                 graph: str, unknown: Mapping[str, int] | None = None) -> None:
        self.model = model
        self.graph = graph                          # the first step's graph, described
        self.unknown = dict(unknown or {})
        self._before = before
        self._steps = steps

    @property
    def before(self) -> dict:
        if callable(self._before):
            self._before = self._before()
        return self._before

    @property
    def steps(self) -> list[dict]:
        steps: list[dict] = [row() if callable(row) else row for row in self._steps]
        self._steps = cast("list[dict | Callable[[], dict]]", steps)   # the same list, every row computed
        return steps

    @property
    def after(self) -> dict:
        last = self.steps[-1]
        return {n: last[n] for n in self.before}

    def table(self) -> str:
        """``quantity | before | after | after/before`` rows for the quantities both sides have."""
        rows = [("quantity", "before", "after", "ratio")]
        for name in (*QUANTITIES, "acc"):
            b, a = self.before.get(name), self.after.get(name)
            if b is None and a is None:
                continue
            ratio = f"{a / b:.3f}" if a is not None and b else "-"
            rows.append((name, _fmt(name, b), _fmt(name, a), ratio))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                         for r in rows)

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after, "steps": self.steps, "graph": self.graph,
                "unknown": self.unknown}


def _fmt(name: str, value) -> str:
    if name == "acc":
        return "-" if value is None else f"{value:.4f}"
    return format_quantity(name, value)


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
    try:
        with torch.device("meta"):       # no memory, no init
            reference = create(**base)
    except Exception:   # noqa: BLE001  a builder that computes with tensors (torchvision's RegNet) builds for real
        reference = create(**base)
    widths = width_changes(layer_widths(reference), layer_widths(pruned))
    setattr(pruned, "card", card.replace(build_args={**base, **({"widths": widths} if widths else {})}))   # plain data
    return pruned


def _step(model: nn.Module, meter: Meter, config: PruneConfig, ratio: float | None, target: Budget | None,
          batches, graph: DependencyGraph, layer_ratios: dict[str, float],
          original: Mapping[tuple[str, ...], int]) -> tuple[nn.Module, float]:
    """One step on ``graph`` (``model``'s): the model without the channels a ratio (or the smallest ratio meeting
    ``target``) removes, ratios counted from the ``original`` widths (``schedule.select``)."""
    scores = importance(graph, config.importance, batches=batches, seed=config.seed)
    pick = lambda r: remove_channels(graph, select(graph, scores, r, global_ranking=config.global_ranking,  # noqa: E731
                                                   round_to=config.round_to, min_width=config.min_width,
                                                   layer_ratios=layer_ratios, original=original))
    if ratio is not None:
        return pick(ratio), ratio
    assert target is not None   # a step without a ratio has a budget (PruneConfig needs one of them)
    meets = lambda m: target.holds(meter(m, target.limits))  # noqa: E731
    if meets(model):                 # already within this step's budget: nothing goes (still a new model)
        return remove_channels(graph, set()), 0.0
    smallest_ratio = 1 - 1e-9
    smallest = pick(smallest_ratio)
    if not meets(smallest):
        values = meter(smallest, target.limits)
        raise ValueError("budget below the smallest reachable model: with every layer at min_width="
                         f"{config.min_width} it has " + ", ".join(
                             f"{q}={values[q]:,.6g}" for q in target.limits) + "; budget: " + ", ".join(
                             f"{q}<={v:,.6g}" for q, v in target.limits.items()))
    # the least pruning that meets the step's budget: the good side of the boundary, from the smallest model
    edge = bisect(lambda r: (meets(c := pick(r)), c), smallest_ratio, 0.0, steps=_SEARCH_STEPS,
                  good_value=smallest)
    assert edge.good_value is not None   # the good end starts at smallest
    return edge.good_value, edge.good


class _ForwardFails(ValueError):
    """The pruned model's forward fails in module ``path`` (of class ``kind``)."""

    def __init__(self, message: str, path: str | None, kind: type | None):
        super().__init__(message)
        self.path, self.kind = path, kind


def _failing_module(model: nn.Module, run: Callable[[], Any]) -> Any:
    """``run()``; an exception from the model's forward becomes a ValueError naming the module it came from."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[nn.Module] = []
    # no always_call: a module that raises is never popped, so the stack ends at the one that failed

    def pre(module, args) -> None:
        if module in names:
            stack.append(module)

    def post(module, args, out) -> None:     # returns None: a hook's value would replace the output
        if module in names and stack:
            stack.pop()

    hooks = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
    try:
        return run()
    except Exception as exc:   # noqa: BLE001  one line naming where, never a traceback
        where = f"{type(stack[-1]).__name__} ({names[stack[-1]] or 'model'})" if stack else "the model"
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _ForwardFails(f"prune: the pruned model's forward fails in {where}: {text}",
                            names[stack[-1]] if stack else None, type(stack[-1]) if stack else None) from exc
    finally:
        for h in hooks:
            h.remove()


def _check_forward(model: nn.Module, shape: tuple[int, ...], out_shapes: tuple[tuple[int, ...], ...]) -> None:
    """The pruned model runs on a batch of 2 (on meta copies of its weights when it can: shapes only) and gives
    the original's output shapes (every tensor of a tuple, list or dict output); else a ValueError naming the
    module where it fails."""
    p = next(iter(model.parameters()), None)
    try:
        y = run_meta(model, torch.zeros((2, *shape)))
    except Exception:   # noqa: BLE001  a forward that needs values: run it for real, naming a failure
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = torch.zeros((2, *shape), device=p.device if p is not None else "cpu")
                y = _failing_module(model, lambda: model(x))
        finally:
            model.train(was)
    got = tuple(tuple(t.shape) for t in output_tensors(y))
    if got != tuple(out_shapes):
        show = lambda shapes: ", ".join(map(str, shapes)) or "no tensor"  # noqa: E731
        raise ValueError(f"prune: the pruned model's output is {show(got)}, not {show(out_shapes)}")


_RETRIES = 4        # modules kept whole, one kind at a time, after the pruned forward fails in them


def _pruned_step(model: nn.Module, graph: DependencyGraph | None, graph_of, meter: Meter, config: PruneConfig,
                 ratio: float | None, target: Budget | None, batches, layer_ratios: dict[str, float],
                 original: Mapping[tuple[str, ...], int], shape: tuple[int, ...], out_shapes,
                 unknown: dict[str, int]) -> tuple[nn.Module, float]:
    """One step whose result runs: when the pruned forward fails inside a module (code that reads a width from
    somewhere the trace cannot see), every module of that kind is kept whole and the step done again (up to
    ``_RETRIES`` kinds, each named in ``unknown``); a failure in the model itself is the error."""
    whole: list[str] = []
    for attempt in range(_RETRIES + 1):
        try:
            graph = graph if graph is not None else graph_of(model, tuple(whole))
            pruned, used = _step(model, meter, config, ratio, target, batches, graph, layer_ratios, original)
        except (ValueError, TypeError):
            raise
        except Exception as exc:   # noqa: BLE001  a rule of the graph or surgery that does not fit: one line
            raise _internal(exc, model) from exc
        try:
            _check_forward(pruned, shape, out_shapes)
            return pruned, used
        except _ForwardFails as exc:
            if attempt == _RETRIES or not exc.path or exc.kind is None:
                raise ValueError(str(exc)) from exc
            same = [n for n, m in model.named_modules() if type(m) is exc.kind and n
                    and not any(n.startswith(w + ".") or n == w for w in whole)]
            if not same:
                raise ValueError(str(exc)) from exc
            whole += same
            unknown[f"{exc.kind.__name__} ({exc.path}; its pruned forward failed: kept whole, "
                    f"{len(same)} like it)"] = len(same)
            graph = None
    raise AssertionError("unreachable")


def _internal(exc: Exception, model: nn.Module) -> ValueError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ValueError(f"prune: cannot prune {type(model).__name__}: {type(exc).__name__}"
                      + (f": {text}" if text else "") + " (a compress.prune rule does not fit this model)")


def prune(model: nn.Module, config: PruneConfig | None = None, *, input_shape: Sequence[int] | None = None,
          data: DataBundle | Split | TorchData | None = None, normalizer: Normalizer | None = None,
          finetune: Callable[[nn.Module, int], nn.Module | None] | None = None,
          evaluate: Callable[[nn.Module], float] | None = None,
          latency: Callable[..., float] | None = None, file_bytes: Callable[[nn.Module], int] | None = None,
          **settings: Any) -> PruneResult:
    """Prune ``model``'s channels for real; returns a :class:`PruneResult` whose ``.model`` is a new, smaller
    ``nn.Module`` (``model`` itself is not modified: every forward, taylor's gradients included, runs on a copy,
    so its parameters, buffers, gradients and flags stay as they were).

    ``steps``: step ``k`` removes what brings each group to ``ratio * fraction_at(k)`` of its original width
    (a step may remove nothing from a group), so the last step reaches the widths one step would. Every tensor
    the model returns (a tuple, list or dict of them) keeps its shape. Layers and tensors the traced forward did
    not reach (a branch not taken) stay whole, with the channels around them pinned and named in ``unknown``;
    tied tensors stay one tensor.

    ``config`` or keyword settings (``prune(model, ratio=0.5, importance="bn")``,
    ``prune(model, budget=Budget(max_params=20_000))``; keywords override the config). ``input_shape``: one
    example ``(C, H, W)``; defaults to the model card's. ``data`` (a bundle: its training split, or a Split, or
    streamed :class:`~compress.data.torch_data.TorchData`: the first images its training data yields) and
    ``normalizer`` (default: the data's own): the images the ``taylor`` importance takes gradients on
    (``config.taylor_images`` of them). ``finetune(model, step)``: called after each step, may return a new model.
    ``evaluate(model) -> accuracy`` adds that column to the before/after table. ``latency``
    (:func:`compress.bench.latency_ms`) times a latency budget and adds the latency column; ``file_bytes(model)``
    measures a budget's ``file_format`` when it is not a state-dict format (:mod:`compress.budget`). A model from
    :func:`compress.models.create` keeps a card that rebuilds the pruned architecture
    (``compress.models.rebuild(card)``, run folders, artifacts).

    Raises ValueError for bad settings (a path of ``ignored_layers`` or ``layer_ratios`` that is not a layer of
    ``model`` is named), a forward that fails on ``input_shape``, a model whose BatchNorm was folded, a latency
    budget without ``latency``, ``taylor`` without ``data``, a budget below the smallest reachable model, or a
    pruned model that does not run (naming the module); TypeError for a non-module.
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
    if config.budget is not None and config.budget.max_latency_ms is not None and latency is None:
        raise ValueError("prune: a latency budget needs latency= (compress.bench.latency_ms)")
    check_paths(model, config.ignored_layers, "prune: ignored_layers")
    check_paths(model, config.layer_ratios, "prune: layer_ratios")
    batches = None
    if config.importance == "taylor":
        if data is None:
            raise ValueError("prune: importance 'taylor' needs data= (a DataBundle or Split) to take gradients on")
        batches = _taylor_batches(data, normalizer, config.taylor_images)
    shape = _input_shape(model, input_shape)
    graph_of = lambda m, whole=(): build_graph(m, shape, ignored_layers=config.ignored_layers,  # noqa: E731
                                               prune_embedding=config.prune_embedding, keep_whole=whole)
    # every forward (a trace on real values, taylor's gradients, the caller's evaluate and latency) runs on a copy:
    # the given model's parameters, buffers, gradients and attributes stay as they were
    work = copy_module(model, {})
    first = graph_of(work)       # fails early, with one line, on a forward that does not run
    if not first.groups:
        raise ValueError("prune: nothing to prune: every channel is pinned" +
                         (f" (by {', '.join(first.unknown)})" if first.unknown else ""))
    meter = Meter(shape, config.budget or Budget(), file_bytes, latency)
    timed = latency is not None
    measure_before = lambda m: meter.table_row(m, with_latency=timed, evaluate=evaluate)  # noqa: E731
    # what no step needs is measured when the result is read: a ratio prune's table, without timing or evaluation
    # (counting never runs the model's own tensors: compress.profile works on meta or cloned ones)
    eager = config.ratio is None or timed or evaluate is not None
    before = measure_before(work) if eager else (lambda: measure_before(model))
    rows: list = []
    current, graph, unknown = work, first, dict(first.unknown)
    # every step's ratios count from the widths before the first step: step k asks for ratio * fraction_at(k) of
    # each group's original width, so a step may take nothing from a group and the steps reach the ratio asked
    original = {g.layers: g.width for g in first.groups}
    done = 0.0
    for k in range(1, config.steps + 1):
        frac = fraction_at(k, config.steps, config.schedule)
        ratio = config.ratio * frac if config.ratio is not None else None
        target = None
        if config.ratio is None:   # a budget (PruneConfig needs one of them), so `before` was measured eagerly
            assert config.budget is not None and isinstance(before, dict)
            # the quantities a budget limits are measured, never None
            target = config.budget.scaled(cast("Mapping[str, float]", before), frac)
        layer_ratios = {p: r * frac for p, r in config.layer_ratios.items()}
        current, used = _pruned_step(current, graph if k == 1 else None, graph_of, meter, config, ratio, target,
                                     batches, layer_ratios, original, shape, first.output_shapes, unknown)
        done = used = max(done, used)
        current = _with_card(model, current)
        if finetune is not None:
            current = finetune(current, k) or current
        last = k == config.steps
        row = lambda m=current, k=k, used=used, last=last: {  # noqa: E731
            "step": k, "ratio": used, **meter.table_row(m, with_latency=timed and last,
                                                        evaluate=evaluate if last else None)}
        rows.append(row if last and not timed and evaluate is None else row())
    return PruneResult(current, before, rows, first.describe(), unknown)


def _taylor_batches(data: DataBundle | Split | TorchData, normalizer: Normalizer | None, images: int,
                    batch: int = 128) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) pairs of the first ``images`` training images, as the model sees them."""
    if isinstance(data, TorchData):   # streamed: read until there are enough
        normalize = normalizer if normalizer is not None else data.normalizer
        return [(normalize(x), y) for x, y in data.train.batches(batch, limit=images)]
    split, normalize = resolve_split(data, "train", normalizer)
    x, y = split.x[:images], split.y[:images]
    return [(normalize(x[i:i + batch]), y[i:i + batch]) for i in range(0, len(x), batch)]


