"""compress.prune against Torch-Pruning on every classification model of torchvision, at ratio 0.5.

    pip install -e ".[zoo]"      # torchvision, timm, torch-pruning (tests/zoo-leg's environment, torch 2.14)
    nice -n 10 python benchmarks/bench_zoo.py [--models resnet18,vit_b_16] [--repeats 3] [--max-params 150e6]
                                              [--timeout 600] [--json zoo.json]

Models: ``torchvision.models.list_models(module=torchvision.models)`` (classification only), each built with
``get_model(name, weights=None, num_classes=10)`` in eval mode, at 3xSxS with S = 96, or 224 for the vision
transformers (vit_*, swin_*, maxvit_*). Models above ``--max-params`` parameters (counted before any pruning)
are skipped and named in the output.

Both sides prune 50% of the channels of every prunable group, the classifier's outputs left alone:

- compress: ``compress.prune.prune(model, PruneConfig(ratio=0.5), input_shape=(3, S, S))`` (L1 importance; the
  call includes its graph, surgery and its own before/after profile, and returns a new model);
- Torch-Pruning: ``MetaPruner(model, example, importance=MagnitudeImportance(p=1), pruning_ratio=0.5,
  ignored_layers=[every Linear/Conv2d with 10 outputs], num_heads=...)`` built and stepped (in place), where
  ``num_heads`` maps each attention's projection to its head count as Torch-Pruning's examples do
  (``nn.MultiheadAttention`` itself for ViT, ``qkv`` for Swin, ``to_qkv`` for MaxViT), then ViT's
  ``hidden_dim`` set to the pruned width (torchvision's forward reads it).

Columns: params before, params after each side, MACs after each side (``compress.budget.mac_count``, batch 1),
seconds of one prune call (one torch thread; one untimed warm-up call per side, whose result gives the other
columns, then ``--repeats`` calls, the two sides interleaved, each on a fresh deep copy of the built model made
outside the timer; median), whether a forward of one image gives shape (1, 10), and failures (exception type
and the first line of its message, per side). Each model runs in its own spawned process with a wall-clock
``--timeout``, so a hang or a crash costs one row, never the run; what a process reported before it was killed
is kept; each process is limited to ``--max-memory-gb`` of address space, so a side that runs away with memory
fails with MemoryError instead of waking the OOM killer.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing as mp
import platform
import queue
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

NUM_CLASSES = 10
RATIO = 0.5
SIDES = ("compress", "tp")
TRANSFORMERS = ("vit_", "swin_", "maxvit_")
DEFAULT_MAX_PARAMS = 150_000_000     # parameters; above: convnext_large, vit_l_*, vit_h_14, regnet_y_128gf
DEFAULT_TIMEOUT_S = 600              # seconds of wall clock per model (both sides, warm-up and repeats)
DEFAULT_MAX_MEMORY_GB = 8.0          # GiB of address space per model's process (RLIMIT_AS)


def is_transformer(name: str) -> bool:
    return name.startswith(TRANSFORMERS)


def image_size(name: str) -> int:
    """S: 224 for the vision transformers (their patch/window grids need it), 96 for the others."""
    return 224 if is_transformer(name) else 96


def classification_models() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def build(name: str):
    from torchvision.models import get_model

    return get_model(name, weights=None, num_classes=NUM_CLASSES).eval()


def meta_param_count(name: str) -> int | None:
    """Parameters of ``name`` built on the meta device (no memory, no init), or None where it cannot be built
    there (RegNet computes its widths with tensors): the worker counts those after building."""
    import warnings

    import torch

    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            return sum(p.numel() for p in build(name).parameters())
    except Exception:
        return None


def failure(exc: BaseException, where: str = "") -> str:
    lines = str(exc).strip().splitlines()
    return f"{where}{type(exc).__name__}" + (f": {lines[0]}" if lines else "")


# ------------------------------------------------------------------ the two sides


def prune_compress(model, size: int):
    from compress.prune import PruneConfig, prune

    return prune(model, PruneConfig(ratio=RATIO), input_shape=(3, size, size)).model


def attention_heads(model) -> dict:
    """``num_heads`` for Torch-Pruning: each attention's input projection -> its head count (torchvision's
    ``nn.MultiheadAttention`` in ViT, ``ShiftedWindowAttention.qkv`` in Swin, ``to_qkv`` in MaxViT)."""
    from torch import nn

    heads = {}
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            heads[m] = m.num_heads
        elif isinstance(getattr(m, "qkv", None), nn.Linear) and hasattr(m, "num_heads"):
            heads[m.qkv] = m.num_heads
        elif isinstance(getattr(m, "to_qkv", None), nn.Linear) and hasattr(m, "n_heads"):
            heads[m.to_qkv] = m.n_heads
    return heads


def prune_tp(model, size: int):
    import torch
    import torch_pruning as tp
    from torch import nn

    ignored = [m for m in model.modules() if (isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES)
               or (isinstance(m, nn.Conv2d) and m.out_channels == NUM_CLASSES)]   # classifiers (aux ones too)
    pruner = tp.pruner.MetaPruner(model, torch.randn(1, 3, size, size),
                                  importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=RATIO,
                                  ignored_layers=ignored, num_heads=attention_heads(model))
    pruner.step()
    if hasattr(model, "hidden_dim") and hasattr(model, "conv_proj"):   # torchvision ViT reshapes by hidden_dim
        model.hidden_dim = model.conv_proj.out_channels
    return model


PRUNERS: dict[str, Callable] = {"compress": prune_compress, "tp": prune_tp}


# ------------------------------------------------------------------ one model, in its own process


def measure_model(name: str, repeats: int, max_params: int | None, report: Callable[[dict], None], *,
                  size: int | None = None) -> None:
    """Prune ``name`` with both sides at ``size`` (default :func:`image_size`) and ``report`` partial rows as they
    come (merged by the caller): ``params_before``, then each side's warm-up result, then the timings after every
    round."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    size = size or image_size(name)
    report({"size": size})
    model = build(name)
    params = sum(p.numel() for p in model.parameters())
    report({"params_before": params})
    if max_params is not None and params > max_params:
        report({"skipped": f"{params:,} params > --max-params {max_params:,}"})
        return
    from compress.budget import mac_count

    report({"macs_before": _try(lambda: mac_count(model, (3, size, size)))})
    example = torch.randn(1, 3, size, size)
    live = []
    for side in SIDES:            # warm-up call: its result gives the size, MACs and shape columns
        t = time.perf_counter()
        try:
            pruned = PRUNERS[side](copy.deepcopy(model), size)
        except Exception as exc:
            report({f"{side}_error": failure(exc), f"{side}_warmup_s": time.perf_counter() - t})
            continue
        row = {f"{side}_warmup_s": time.perf_counter() - t,
               f"{side}_params": sum(p.numel() for p in pruned.parameters()),
               f"{side}_macs": _try(lambda: mac_count(pruned, (3, size, size)))}
        try:
            with torch.no_grad():
                shape = tuple(pruned.eval()(example).shape)
            row[f"{side}_shape_ok"] = shape == (1, NUM_CLASSES)
            if not row[f"{side}_shape_ok"]:
                row[f"{side}_error"] = f"output shape {shape}, expected (1, {NUM_CLASSES})"
        except Exception as exc:
            row[f"{side}_shape_ok"] = False
            row[f"{side}_error"] = failure(exc, "forward after pruning: ")
        report(row)
        live.append(side)
        del pruned
    times: dict[str, list[float]] = {side: [] for side in live}
    for _ in range(repeats):      # the two sides interleaved, the copy outside the timer
        for side in list(live):
            m = copy.deepcopy(model)
            t = time.perf_counter()
            try:
                PRUNERS[side](m, size)
            except Exception as exc:  # it worked once: say so beside the time, keep the calls that did finish
                report({f"{side}_note": failure(exc, "a timed call: ")})
                live.remove(side)
                continue
            times[side].append(time.perf_counter() - t)
            del m
        report({f"{side}_times_s": list(ts) for side, ts in times.items()})


def _try(fn):
    try:
        return fn()
    except Exception:
        return None


def _worker(name: str, repeats: int, max_params: int | None, size: int | None, max_memory_gb: float | None,
            out) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")     # torchvision's init FutureWarnings, TP's notices: not the table's business
    if max_memory_gb:                   # a MemoryError in this row rather than the OOM killer on a shared machine
        limit = int(max_memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        measure_model(name, repeats, max_params, out.put, size=size)
    except BaseException as exc:          # anything outside a prune call (the build itself, out of memory)
        out.put({"error": failure(exc)})
    out.put(None)


def run_model(name: str, *, repeats: int = 3, max_params: int | None = DEFAULT_MAX_PARAMS,
              timeout_s: float = DEFAULT_TIMEOUT_S, size: int | None = None,
              max_memory_gb: float | None = DEFAULT_MAX_MEMORY_GB) -> dict[str, Any]:
    """One row for ``name``: both sides measured at ``size`` (default :func:`image_size`) in a spawned process
    limited to ``max_memory_gb`` GiB of address space and killed after ``timeout_s`` seconds; a side the process
    did not finish is marked ``Timeout`` (or ``crash``), what it reported before is kept."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(name, repeats, max_params, size, max_memory_gb, out), daemon=True)
    row: dict[str, Any] = {"model": name, "transformer": is_transformer(name)}
    start = time.perf_counter()
    proc.start()
    done = False
    while not done:
        left = timeout_s - (time.perf_counter() - start)
        if left <= 0:
            break
        try:
            part = out.get(timeout=max(0.1, min(left, 5.0)))
        except queue.Empty:
            if not proc.is_alive():
                break
            continue
        if part is None:
            done = True
        else:
            row.update(part)
    if not done:
        reason = (f"Timeout: no result within {timeout_s:g} s" if proc.is_alive()
                  else f"crash: process exited with code {proc.exitcode}"
                  + (f" (signal {-proc.exitcode})" if (proc.exitcode or 0) < 0 else ""))
        proc.kill()
        _mark_unfinished(row, reason)
    proc.join(10)
    row["wall_s"] = time.perf_counter() - start
    _summarize(row, repeats)
    return row


def _mark_unfinished(row: dict, reason: str) -> None:
    """A process killed (timeout) or dead (crash): a side whose warm-up never came back failed with ``reason``."""
    if "params_before" not in row:
        row.setdefault("error", reason)
        return
    for side in SIDES:
        if f"{side}_error" in row:
            continue
        if f"{side}_params" not in row:
            row[f"{side}_error"] = reason                   # the warm-up call never came back
        else:
            row.setdefault(f"{side}_note", reason)          # the warm-up did: its columns stand, fewer timed calls


def _summarize(row: dict, repeats: int) -> None:
    for side in SIDES:
        if row.get("error") and f"{side}_params" not in row:      # the process failed before this side ran
            row.setdefault(f"{side}_error", row["error"])
        ts = row.get(f"{side}_times_s") or []
        if f"{side}_params" in row and len(ts) < repeats:
            row[f"{side}_note"] = f"{len(ts)} of {repeats} timed calls; " + row.get(f"{side}_note", "")
        row[f"{side}_s"] = statistics.median(ts) if ts else None
        row[f"{side}_ok"] = f"{side}_error" not in row and bool(row.get(f"{side}_shape_ok"))
    a, b = row.get("compress_params"), row.get("tp_params")
    row["params_ratio"] = a / b if a and b else None


# ------------------------------------------------------------------ the report


def _n(v) -> str:
    return "-" if v is None else f"{v:,}"


def _s(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _ok(row: dict, side: str) -> str:
    if f"{side}_shape_ok" not in row:
        return "-"
    return "yes" if row[f"{side}_shape_ok"] else "no"


def table(rows: list[dict]) -> str:
    lines = ["| model | S | params before | compress params | TP params | compress/TP params | compress MACs "
             "| TP MACs | compress s | TP s | TP/compress time | shape ok (c/TP) | compress failure | TP failure |",
             "|" + "---|" * 14]
    for r in rows:
        if r.get("skipped"):
            continue
        speed = (f"{r['tp_s'] / r['compress_s']:.2f}x" if r.get("tp_s") and r.get("compress_s") else "-")
        ratio = f"{r['params_ratio']:.3f}" if r.get("params_ratio") else "-"
        lines.append(" | ".join([
            f"| {r['model']}", str(r.get("size", "-")), _n(r.get("params_before")), _n(r.get("compress_params")),
            _n(r.get("tp_params")), ratio, _n(r.get("compress_macs")), _n(r.get("tp_macs")),
            _s(r.get("compress_s")), _s(r.get("tp_s")), speed, f"{_ok(r, 'compress')}/{_ok(r, 'tp')}",
            _cell(r.get("compress_error") or r.get("compress_note")), _cell(r.get("tp_error") or r.get("tp_note")),
        ]) + " |")
    return "\n".join(lines)


def _cell(text: str | None, width: int = 90) -> str:
    if not text:
        return ""
    text = text.replace("|", "/")
    return text if len(text) <= width else text[:width - 3] + "..."


def summary(rows: list[dict]) -> str:
    measured = [r for r in rows if not r.get("skipped")]
    lost = [r["model"] for r in measured if not r["compress_ok"] and r["tp_ok"]]
    both_fail = [r["model"] for r in measured if not r["compress_ok"] and not r["tp_ok"]]
    tp_lost = [r["model"] for r in measured if r["compress_ok"] and not r["tp_ok"]]
    fat = [f"{r['model']} {r['params_ratio']:.2f}x" for r in measured
           if not r["transformer"] and r["compress_ok"] and r["tp_ok"] and r["params_ratio"]
           and r["params_ratio"] > 1.1]
    vits = [f"{name} {r['params_ratio']:.3f}" if r.get("params_ratio") else
            f"{name} - ({' and '.join(s for s in SIDES if not r[f'{s}_ok'])} failed)"
            for name in ("vit_b_16", "swin_t") for r in measured if r["model"] == name]
    timed = [r for r in measured if r.get("compress_s") and r.get("tp_s")]
    faster = sum(r["compress_s"] < r["tp_s"] for r in timed)
    skipped = [f"{r['model']} ({r['skipped']})" if "max-params" not in r["skipped"] else r["model"]
               for r in rows if r.get("skipped")]
    return "\n".join([
        f"models: {len(measured)} measured, {len(skipped)} skipped"
        + (f" (over --max-params: {', '.join(skipped)})" if skipped else ""),
        f"compress fails while Torch-Pruning succeeds ({len(lost)}): {', '.join(lost) or 'none'}",
        f"Torch-Pruning fails while compress succeeds ({len(tp_lost)}): {', '.join(tp_lost) or 'none'}",
        f"both fail ({len(both_fail)}): {', '.join(both_fail) or 'none'}",
        f"CNNs where compress keeps > 1.1x Torch-Pruning's params ({len(fat)}): {', '.join(fat) or 'none'}",
        f"compress/TP params: {', '.join(vits) or 'vit_b_16 and swin_t not measured'}",
        f"compress faster on {faster}/{len(timed)} models timed on both sides"
        + (f" ({100 * faster / len(timed):.0f}%)" if timed else ""),
    ])


def environment() -> dict[str, str]:
    import torch
    import torch_pruning
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "torch_pruning": getattr(torch_pruning, "__version__", "?"), "machine": platform.processor() or
            platform.machine()}


def run(names: list[str], *, repeats: int = 3, max_params: int | None = DEFAULT_MAX_PARAMS,
        timeout_s: float = DEFAULT_TIMEOUT_S, size: int | None = None,
        max_memory_gb: float | None = DEFAULT_MAX_MEMORY_GB,
        progress: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per model of ``names`` (skipped ones included, with ``skipped`` saying why); ``size`` overrides
    every model's S (a smoke test's 32)."""
    rows = []
    for name in names:
        count = meta_param_count(name)
        if max_params is not None and count is not None and count > max_params:
            row = {"model": name, "transformer": is_transformer(name), "params_before": count,
                   "skipped": f"{count:,} params > --max-params {max_params:,}"}
        else:
            row = run_model(name, repeats=repeats, max_params=max_params, timeout_s=timeout_s, size=size,
                            max_memory_gb=max_memory_gb)
        rows.append(row)
        if progress:
            progress(row)
    return rows


def _progress(row: dict) -> None:
    if row.get("skipped"):
        print(f"  {row['model']}: skipped, {row['skipped']}", file=sys.stderr, flush=True)
        return
    parts = [f"{side} " + ("ok" if row[f"{side}_ok"] else (row.get(f"{side}_error") or "?"))
             for side in SIDES]
    print(f"  {row['model']} ({row['wall_s']:.0f} s): {'; '.join(parts)}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated torchvision names (default: every one)")
    p.add_argument("--repeats", type=int, default=3, help="timed prune calls per side after the warm-up")
    p.add_argument("--max-params", type=float, default=DEFAULT_MAX_PARAMS,
                   help="skip models with more parameters (0: no limit; default %(default).0f)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per model (default %(default)s)")
    p.add_argument("--max-memory-gb", type=float, default=DEFAULT_MAX_MEMORY_GB,
                   help="GiB of address space per model's process (0: no limit; default %(default)s)")
    p.add_argument("--json", default=None, help="also write the rows and the environment to this file")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        import torch_pruning  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as exc:
        print(f"needs torchvision and torch-pruning ({exc}): pip install -e \".[zoo]\"",
              file=sys.stderr)
        return 2
    known = classification_models()
    names = known if args.models is None else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"--models: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    if args.json:
        from compress._io import check_output

        check_output(Path(args.json), overwrite=True, what="--json")
    max_params = int(args.max_params) or None
    start = time.perf_counter()
    rows = run(names, repeats=args.repeats, max_params=max_params, timeout_s=args.timeout,
               max_memory_gb=args.max_memory_gb or None, progress=_progress)
    total = time.perf_counter() - start
    print(table(rows))
    print()
    print(summary(rows))
    print(f"{total:.0f} s in all ({args.repeats} timed calls per side after a warm-up, 1 torch thread)")
    if args.json:
        from compress._io import write_json

        write_json(Path(args.json), {"rows": rows, "environment": environment(), "repeats": args.repeats,
                                     "max_params": max_params, "timeout_s": args.timeout,
                                     "max_memory_gb": args.max_memory_gb, "total_s": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
