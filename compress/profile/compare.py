"""The cross-check: fvcore's, thop's and FlopCounterMode's totals next to ours, each difference explained."""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from compress.profile.counter import profile
from compress.profile.result import Profile

__all__ = ["CounterResult", "Comparison", "compare"]


@dataclass
class CounterResult:
    """One external counter's total next to ours, with the reasons for the difference computed from the data."""

    name: str
    available: bool
    error: str | None = None  # why it did not run (import failed, it raised)
    total: float | None = None  # as that counter reports it, in ``unit``
    unit: str = ""  # "MACs" (one multiply-add counts one) or "FLOPs" (two per multiply-add)
    macs_equivalent: int | None = None  # ``total`` in our unit
    difference: int | None = None  # macs_equivalent - our macs
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, reasons=list(self.reasons))


@dataclass
class Comparison:
    """``ours`` (a ``Profile``) and each counter's result; ``str()`` renders them side by side."""

    ours: Profile
    counters: list[CounterResult]

    def to_dict(self) -> dict[str, Any]:
        return {"ours": {"macs": self.ours.macs, "flops": self.ours.flops, "norm_flops": self.ours.norm_flops,
                         "unsupported": self.ours.unsupported},
                "counters": [c.to_dict() for c in self.counters]}

    def table(self) -> str:
        lines = [f"{'counter':<14} {'reported':>16} {'unit':<6} {'as MACs':>16} {'vs ours':>14}",
                 f"{'compress':<14} {self.ours.macs:>16,} {'MACs':<6} {self.ours.macs:>16,} {0:>14,}"]
        for c in self.counters:
            if not c.available:
                lines.append(f"{c.name:<14} not available: {c.error}")
                continue
            lines.append(f"{c.name:<14} {c.total:>16,.0f} {c.unit:<6} {c.macs_equivalent:>16,} {c.difference:>+14,}")
        for c in self.counters:
            if c.available and c.reasons:
                lines += ["", f"{c.name}:", *(f"  - {r}" for r in c.reasons)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _per_leaf(ours: Profile, model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """Leaf modules by name, and our records summed per leaf (MACs, bias adds, input elements, FLOPs by kind)."""
    leaves = {name: m for name, m in model.named_modules() if not m._modules and name}
    per: dict[str, dict[str, Any]] = {}
    for r in ours.records:
        if r.module in leaves:
            d = per.setdefault(r.module, {"macs": 0, "bias": 0, "in_numel": 0, "kinds": Counter()})
            d["macs"] += r.macs
            d["bias"] += r.bias_adds
            if r.kind not in ("shape", "memory"):
                d["in_numel"] += r.in_numel
                d["kinds"][r.kind] += r.flops
    return leaves, per


def _explain_by_module(theirs: Mapping[str, float], total: float, ours: Profile, model: nn.Module,
                       name: str) -> list[str]:
    """Group per-leaf differences (their count minus our MACs) by module type and say what each one is."""
    leaves, per = _per_leaf(ours, model)
    groups: dict[str, dict[str, Any]] = {}
    for leaf, module in leaves.items():
        g = groups.setdefault(type(module).__name__, {"theirs": 0, "macs": 0, "bias": 0, "in_numel": 0,
                                                      "kinds": Counter(), "n": 0})
        mine = per.get(leaf, {"macs": 0, "bias": 0, "in_numel": 0, "kinds": Counter()})
        g["theirs"] += int(theirs.get(leaf, 0))
        g["n"] += 1
        for k in ("macs", "bias", "in_numel"):
            g[k] += mine[k]
        g["kinds"].update(mine["kinds"])
    reasons = []
    for typ, g in groups.items():
        d = g["theirs"] - g["macs"]
        if d == 0:
            continue
        if g["macs"] and d == g["bias"]:
            reasons.append(f"counts the bias additions of {g['n']} {typ}: {d:+,} (our records: {g['bias']:,} bias "
                           f"adds, which MACs exclude)")
        elif g["macs"] == 0 and g["in_numel"]:
            kinds = "/".join(k for k, v in g["kinds"].items() if v) or "no arithmetic"
            reasons.append(f"counts {g['n']} {typ} ({kinds}), which papers' MACs exclude: {d:+,} = "
                           f"{d / g['in_numel']:g} per input element over {g['in_numel']:,} elements"
                           + (f" (our {kinds} FLOPs for them: {sum(g['kinds'].values()):,})" if g["kinds"] else ""))
        elif g["theirs"] == 0:
            reasons.append(f"does not count {g['n']} {typ}: {d:+,} (our MACs for them: {g['macs']:,})")
        else:
            reasons.append(f"{typ}: {name} {g['theirs']:,} vs our {g['macs']:,} MACs ({d:+,})")
    their_rest = int(total) - sum(int(theirs.get(leaf, 0)) for leaf in leaves)
    outside = [r for r in ours.records if r.module not in leaves and r.macs]
    our_rest = sum(r.macs for r in outside)
    if their_rest != our_rest:
        ops = ", ".join(f"{op} x{n}" for op, n in Counter(r.op for r in outside).items()) or "none"
        reasons.append(f"ops run outside leaf modules (functional code; ours: {ops}): {name} {their_rest:,} vs our "
                       f"{our_rest:,} MACs ({their_rest - our_rest:+,})")
    return reasons


def _flops_by_op(ours: Profile) -> dict[str, tuple[int, str]]:
    out: dict[str, list] = {}
    for r in ours.records:
        entry = out.setdefault(r.op.rstrip("_"), [0, r.kind])
        entry[0] += r.flops
    return {k: (v[0], v[1]) for k, v in out.items()}


def _run_fvcore(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    with warnings.catch_warnings():  # torch.jit deprecation notices from fvcore's tracing, not the user's concern
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        total = analysis.total()
    reasons = ["unit: one multiply-add counts one flop, the same unit as our MACs"]
    reasons += _explain_by_module(analysis.by_module(), total, ours, model, "fvcore")
    mine = _flops_by_op(ours)
    for op, calls in analysis.unsupported_ops().items():
        base = op.split("::")[-1].rstrip("_")
        matches = [v for k, v in mine.items() if k == base or k.startswith(base + "_")]  # max_pool2d_with_indices
        flops, kind = sum(v[0] for v in matches), "/".join(sorted({v[1] for v in matches})) or "no handle"
        reasons.append(f"skips {op} x{calls} as 'unsupported' (counted 0); ours counts it in FLOPs only "
                       f"({kind}: {flops:,})")
    return CounterResult("fvcore", True, total=total, unit="MACs", macs_equivalent=int(total),
                         difference=int(total) - ours.macs, reasons=reasons)


def _run_thop(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    import thop

    total, _, tree = thop.profile(model, inputs=(x,), verbose=False, ret_layer_info=True)
    flat: dict[str, float] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, (ops, _params, children) in node.items():
            flat[prefix + key] = ops
            walk(children, prefix + key + ".")

    walk(tree, "")
    reasons = ["unit: MACs, from forward hooks on modules with a rule (plus functional matmul/linear/einsum)"]
    reasons += _explain_by_module(flat, total, ours, model, "thop")
    return CounterResult("thop", True, total=total, unit="MACs", macs_equivalent=int(total),
                         difference=int(total) - ours.macs, reasons=reasons)


def _run_flop_counter(model: nn.Module, x: torch.Tensor, ours: Profile) -> CounterResult:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    total = counter.get_total_flops()
    theirs = {str(op).removeprefix("aten."): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    mine = ours.by_operator()
    reasons = [f"unit: FLOPs, 2 per multiply-add: {total:,} / 2 = {total // 2:,} MACs; bias, norms and "
               f"elementwise ops are not counted (ours: {ours.flops - 2 * ours.macs:,} such FLOPs)"]
    for op in sorted(set(theirs) | set(mine)):
        t, m = theirs.get(op, 0) // 2, mine.get(op, 0)
        if t != m:
            reasons.append(f"{op}: flop_counter {t:,} vs our {m:,} MACs ({t - m:+,})")
    return CounterResult("flop_counter", True, total=total, unit="FLOPs", macs_equivalent=total // 2,
                         difference=total // 2 - ours.macs, reasons=reasons)


_COUNTERS = {"fvcore": _run_fvcore, "thop": _run_thop, "flop_counter": _run_flop_counter}


def compare(model: nn.Module, input_shape: Sequence[int], *, counters: Sequence[str] = tuple(_COUNTERS),
            ours: Profile | None = None) -> Comparison:
    """Run fvcore's ``FlopCountAnalysis``, ``thop.profile`` and ``torch.utils.flop_counter.FlopCounterMode`` on a
    deep copy of ``model`` in eval mode (zeros input, the model's device and dtype) and put their totals next to
    our MACs, each with the reasons for the difference computed from our records (per module type: BatchNorm,
    pooling, bias, activations; functional ops; ops a counter skips). A counter that cannot be imported or fails
    is reported as not available, with the error. Raises like ``profile`` for bad input, ``ValueError`` for an
    unknown counter name.
    """
    unknown = [c for c in counters if c not in _COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter(s) {unknown}; known: {list(_COUNTERS)}")
    ours = ours if ours is not None else profile(model, input_shape, serialize=False)
    first = next(iter(model.parameters()), None)
    results = []
    for name in counters:
        try:
            copy_ = copy.deepcopy(model).eval()  # thop and fvcore run real forwards; the original stays as it is
            x = torch.zeros(ours.input_shape, device=first.device if first is not None else "cpu",
                            dtype=first.dtype if first is not None and first.is_floating_point() else torch.float32)
            result = _COUNTERS[name](copy_, x, ours)
            if ours.unsupported:
                result.reasons.append("ours has no handle for " + ", ".join(
                    f"{op} x{n}" for op, n in ours.unsupported.items()) + f"; {name} may count them")
            results.append(result)
        except Exception as exc:  # ImportError included: each counter is optional
            results.append(CounterResult(name, False, error=f"{type(exc).__name__}: {exc}"))
    return Comparison(ours, results)
