"""``search(run, budget)``: the most accurate model under a byte and a latency budget, searched over pruning,
distillation, codecs and runtimes together, with every candidate kept and the Pareto front drawn.

    from compress.budget import Budget
    from compress.search import search
    result = search("runs/mbv1", Budget(max_bytes=225_000, max_latency_ms=2.0), out="search/mbv1")
    print(result.table())

Three phases, each resumable (a folder records what it finished; a rerun skips it and refuses changed settings):

1. the models (:mod:`compress.search.plan`): pruned and fine-tuned, Deep-Compressed, scaled, on the executor
   (``--jobs`` workers or Ray), the most promising first;
2. the artifacts: each model written through each codec, reloaded, scored on the validation split (and the test
   split, reported only), on the driver;
3. latency: each artifact that fits the byte budget timed on every runtime that can execute it (outputs checked
   against eager), on the driver with nothing else running, so that the timings are not shared with training.

The data: a bundle in memory, or streamed (:class:`~compress.data.torch_data.TorchData`: read batch by batch in
every phase, never held whole; see :func:`search`).

The folder: ``search.json`` (settings), ``models/`` (run folders and Deep Compression outputs), ``artifacts/``,
``candidates/`` (one record per artifact), and at the end ``candidates.csv``/``.json``, ``pareto.png``,
``report.md``, ``best.<format>`` (plus ``best.onnx`` when the winner runs on an ONNX runtime).
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from compress import _io
from compress.budget import Budget
from compress.evidence import warn_unresolvable
from compress.search.candidates import Candidate, choose, nearest, pareto_front
from compress.search.config import SearchConfig
from compress.search.plan import Plan, Spec, make_plan
from compress.track import RunTracking

__all__ = ["search", "SearchResult", "SearchBudgetError", "SEARCH_FORMAT"]

SEARCH_FORMAT = "compress.search/1"


class SearchBudgetError(ValueError):
    """No candidate meets the budget; ``result`` holds every candidate and ``result.nearest`` the closest."""

    def __init__(self, message: str, result: "SearchResult") -> None:
        super().__init__(message)
        self.result = result


@dataclass
class SearchResult:
    """Every candidate, the winner (None when nothing fits), the candidates tied with it, and where it was written."""

    out: Path
    budget: Budget
    candidates: list[Candidate]
    best: Candidate | None
    tied: list[Candidate]
    seconds: float
    skipped: list[str] = field(default_factory=list)   # what the time budget left out, and failed models
    nearest: list[Candidate] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def dense(self) -> Candidate:
        return next(c for c in self.candidates if c.method == "dense")

    def table(self, rows: list[Candidate] | None = None) -> str:
        """Plain text: one line per candidate (front '+', winner '*'), bytes, params, MACs, latency, accuracies."""
        rows = self.candidates if rows is None else rows
        lines = [f"  {'candidate':<44} {'bytes':>10} {'params':>10} {'MACs':>12} {'ms':>8} {'runtime':<17} "
                 f"{'val acc':>7} {'test acc':>8}  fits"]
        for r in rows:
            mark = "*" if r.chosen else ("+" if r.front else " ")
            if r.error:
                lines.append(f"{mark} {r.id:<44} {'-':>10} {'failed: ' + r.error[:60]}")
                continue
            ms = f"{r.latency_ms:8.3f}" if r.latency_ms is not None else f"{'-':>8}"
            acc = lambda a: f"{100 * a:6.2f}%" if a is not None else f"{'-':>7}"  # noqa: E731
            lines.append(f"{mark} {r.id:<44} {r.size_bytes or 0:>10,} {r.param_count or 0:>10,} {r.macs or 0:>12,} "
                         f"{ms} {(r.runtime or '-'):<17} {acc(r.val_acc)} {acc(r.test_acc):>8}  "
                         f"{'yes' if r.fits else 'no'}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"format": SEARCH_FORMAT, "budget": self.budget.to_dict(), "seconds": self.seconds,
                "best": self.best.id if self.best else None, "tied": [c.id for c in self.tied],
                "skipped": self.skipped, "nearest": [c.id for c in self.nearest], "files": self.files,
                "candidates": [c.row() for c in self.candidates]}


# ------------------------------------------------------------------------------------------------- checks
def _check_budget(budget: Budget) -> None:
    if not isinstance(budget, Budget):
        raise TypeError(f"search: budget must be a compress.budget.Budget, got {type(budget).__name__}")
    if budget.max_bytes is None:
        raise ValueError("search: the budget needs max_bytes (--max-bytes): the artifact's file size limit")
    if budget.max_params is not None or budget.max_macs is not None:
        raise ValueError("search: limits are max_bytes and max_latency_ms; params and MACs are reported, not limited")


def _max_bytes(budget: Budget) -> int:
    """The artifact's byte limit, which :func:`_check_budget` required."""
    assert budget.max_bytes is not None
    return budget.max_bytes


def _runtimes(config: SearchConfig, budget: Budget) -> list[str]:
    from compress.bench.runtimes import available_runtimes, check_runtime, runtime_names

    if config.runtimes is None:
        return [r for r in available_runtimes("cpu") if r != "compile"]
    known = runtime_names()
    for r in config.runtimes:
        if r not in known:
            raise ValueError(f"runtime {r!r} is unknown; known: {', '.join(known)}")
        check_runtime(r, "cpu")      # not installed: a ValueError naming what to install
    return list(config.runtimes)


def _check_latency(budget: Budget, runtimes: list[str], shape, num_classes: int) -> None:
    from compress.search.measure import overhead_ms

    if budget.max_latency_ms is None:
        return
    floor = overhead_ms(runtimes, shape, num_classes, batch_size=budget.batch_size, threads=budget.threads)
    if floor and budget.max_latency_ms < min(floor.values()):
        named = ", ".join(f"{r} {ms:.4f} ms" for r, ms in sorted(floor.items(), key=lambda kv: kv[1]))
        raise ValueError(f"--max-latency-ms {budget.max_latency_ms:g} is below every runtime's per-call overhead "
                         f"(one linear layer on a {'x'.join(map(str, shape))} image at batch {budget.batch_size}, "
                         f"{budget.threads} thread(s), measured here: {named})")


def _source(run, data, normalizer, train) -> tuple[Any, Any]:
    """``(run, data)``: a run folder or a Run (its own data unless ``data``), or a model with ``data`` (a
    DataBundle, or streamed data: a torch Dataset, DataLoader or TorchData), ``normalizer`` (default the data's) and
    ``train`` (a TrainConfig: fine-tuning settings and the epochs the search's budgets count from) wrapped as a Run
    without a folder. Streamed data comes back as a TorchData, checked item by item (:func:`_given_stream`)."""
    from torch import nn

    from compress.data.bundle import DataBundle
    from compress.data.torch_data import TorchData, as_torch_data, is_torch_data
    from compress.models.card import card_of
    from compress.train import TrainConfig
    from compress.train.runs import Run, load_run

    if is_torch_data(data):
        data = as_torch_data(data)
    elif data is not None and not isinstance(data, DataBundle):
        raise TypeError(f"search: data must be a compress DataBundle, a torch Dataset or DataLoader, or a TorchData; "
                        f"got {type(data).__name__}")
    if isinstance(run, nn.Module):
        if data is None:
            raise TypeError("search: a model needs data= (a compress DataBundle, or a torch Dataset, DataLoader or "
                            "TorchData, with training and validation data) to fine-tune and score on")
        card = card_of(run)
        if card is None:
            raise ValueError(f"search: {type(run).__name__} has no card (build it with compress.models.create, or "
                             "train it with compress.train.fit), so pruned versions cannot be rebuilt")
        config = train or TrainConfig()
        if isinstance(data, TorchData):
            _given_stream(data, f"model {card.name}", config.batch_size, statistics=normalizer is None,
                          num_classes=_output_width(run, data))
        src = Run(model=run.eval(), config=config, history=[], metrics={},
                  data_source=data.source, data_options=dict(data.options), class_names=tuple(data.class_names),
                  normalizer=normalizer or data.normalizer, card=card)
        name = f"model {card.name}"
    else:
        src = run if isinstance(run, Run) else load_run(run)
        name = f"run {src.path}"
        if train is not None:
            src.config = train
        if isinstance(data, TorchData):   # the run's own normalization: no statistics to sum
            _given_stream(data, name, src.config.batch_size, statistics=False, num_classes=len(src.class_names))
    if src.card is None:
        raise ValueError(f"{name}: its model has no card, so pruned versions cannot be rebuilt")
    if data is not None:
        bundle = data
    else:
        try:
            bundle = src.data()
        except (ValueError, OSError) as exc:
            raise ValueError(f"{name}: no data to fine-tune on ({exc}); pass data=") from None
    if bundle.val is None or not len(bundle.val) or not bundle.val.labeled:
        raise ValueError(f"{name}: its data {bundle.source!r} has no labeled validation split to choose on")
    return src, bundle


def _given_stream(data, name: str, batch_size: int, *, statistics: bool, num_classes: int) -> None:
    """Streamed data made ready to search on, before any folder is made: ``num_classes`` classes (the run's, or the
    model's output width: data naming another number is refused), a validation split read in one fixed order (the
    paired comparisons line images up by position), and :meth:`TorchData.prepare`: every item checked (the first bad
    one named) and, with ``statistics``, the training images' mean and std summed, in one streamed pass."""
    from torch.utils.data import DataLoader, RandomSampler

    if data.val is None or not len(data.val):
        raise ValueError(f"{name}: its data {data.source!r} has no validation split to choose on (give "
                         "TorchData(train, val=...))")
    loader = data.val.source
    if isinstance(loader, DataLoader) and any(isinstance(s, RandomSampler) for s in
                                              (loader.sampler, getattr(loader.batch_sampler, "sampler", None))):
        raise ValueError(f"{name}: the validation DataLoader shuffles; every candidate is compared with the others "
                         "image by image, so validation must be read in one fixed order: give a DataLoader with "
                         "shuffle=False, or the Dataset itself")
    data.with_num_classes(num_classes)        # a ValueError when the data names another number of classes
    data.prepare(batch_size, statistics=statistics)


def _output_width(model, data) -> int:
    """How many classes ``model`` tells apart: its output width on the stream's first training image."""
    import torch

    from compress.device import model_device

    try:
        with torch.no_grad():                  # in eval mode, one image is a batch
            out = model.eval()(data.train.first()[0].unsqueeze(0).float().to(model_device(model)))
    except RuntimeError as exc:
        raise ValueError(f"search: the model does not accept {'x'.join(map(str, data.train.first()[0].shape))} "
                         f"images from {data.source}: {str(exc).splitlines()[0]}") from None
    if out.ndim != 2:
        raise ValueError(f"search: the model outputs {tuple(out.shape[1:])} per image; a classifier outputs "
                         "(classes,)")
    return int(out.shape[1])


def _fingerprint(model) -> str:
    """sha256 of the source model's weights: a resumed search must start from the same model."""
    import hashlib

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- the folder
def _settings(src, budget: Budget, config: SearchConfig, finetune_epochs: float) -> dict:
    import json

    return json.loads(json.dumps({"format": SEARCH_FORMAT, "source": str(Path(src.path).resolve()) if src.path else None,
            "weights_sha256": _fingerprint(src.model),
            "budget": budget.to_dict(), "settings": config.settings(), "finetune_epochs": finetune_epochs,
            "deep_epochs": list(config.deep_epochs(float(src.config.epochs)))}))
    # (through JSON: the tuples of the settings compare equal to the lists a resumed search reads back)


def _open_folder(out: Path, settings: dict, overwrite: bool) -> None:
    path = out / "search.json"
    if path.exists():
        try:
            import json

            held = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a search record ({exc}); use another --out or --overwrite") from None
        if not isinstance(held, dict):
            raise ValueError(f"{path}: not a search record; use another --out or --overwrite")
        if held != settings and not overwrite:
            differ = sorted(k if k != "settings" else "settings (" + ", ".join(
                sorted(s for s in set(settings["settings"]) | set(held.get("settings") or {})
                       if settings["settings"].get(s) != (held.get("settings") or {}).get(s))) + ")"
                for k in set(settings) | set(held) if settings.get(k) != held.get(k))
            raise ValueError(f"--out {out} holds a search with other settings (differs in: {', '.join(differ)}); "
                             "use another --out, or --overwrite to start it again")
        if overwrite:
            for sub in ("models", "artifacts", "candidates"):
                shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("models", "artifacts", "candidates"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _io.write_json(path, settings)


def _read_records(folder: Path) -> dict[str, dict]:
    import json

    done = {}
    for f in sorted(folder.glob("*.json")):
        try:
            done[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError):
            continue          # a torn record from a killed run: redone
    return done


# ------------------------------------------------------------------------------------------------- the verb
def search(run, budget: Budget, config: SearchConfig | None = None, *, out: str | os.PathLike,
           data=None, normalizer=None, train=None, executor=None, overwrite: bool = False,
           log: Callable[[str], None] | None = None, loggers: str | Sequence[str] | None = None,
           log_dir: str | os.PathLike = ".") -> SearchResult:
    """Search pruning, distillation, codecs and runtimes together for the most accurate artifact of a model within
    ``budget`` (``max_bytes``: the artifact file; ``max_latency_ms`` at ``batch_size`` with ``threads``). Writes
    the folder ``out`` (module docstring) and returns a :class:`SearchResult`.

    ``run``: a run folder or a :class:`compress.train.Run` (fine-tuned on the data it was trained on, unless
    ``data``), or a model (an ``nn.Module`` with a card: built by ``compress.models.create`` or trained by
    ``fit``) with ``data`` (a DataBundle with labeled train and validation splits), ``normalizer`` (default the
    data's) and ``train`` (a :class:`compress.train.TrainConfig`: the fine-tuning settings; its ``epochs`` set how
    long pruned models are fine-tuned unless ``config.finetune_epochs``).

    ``data`` may also be streamed (:class:`compress.data.TorchData` with ``val=``; a bare Dataset or DataLoader has
    no validation split and is refused): nothing is materialized. Every item is checked in one pass before any
    folder is made (the first bad one named; with a model and no ``normalizer``, the training statistics are summed
    in the same pass; a run keeps its own normalization and classes); pruning, fine-tuning, distillation and Deep
    Compression read it batch by batch, in worker processes too (a TorchData pickles; a Dataset class defined in a
    notebook cannot be unpickled by a spawned worker: use the default executor there); each candidate is
    scored on the validation and test splits batch by batch in their fixed order (a Dataset's index order; a
    validation DataLoader that shuffles is refused, since candidates are compared image by image); latency's int8
    calibration draws its images from the training stream once. A run trained on streamed data (whose
    ``run.data()`` cannot reload it) is searched with ``data=`` given.

    ``executor`` (``compress.study.make_executor``: local processes or Ray) trains the models; default here, one
    after another. ``log`` gets progress lines, with the current front as it grows. A folder holding a search
    with the same settings is resumed (finished models and candidates are kept); other settings are refused
    unless ``overwrite``. ``loggers``: tracking names (``"tensorboard,mlflow,csv"``, :func:`compress.track.make_loggers`
    with ``log_dir``): each model trained here is a tracked run (``SEARCH/TASK``, its fine-tuning epochs; csv in its
    run folder), and the search one more: its settings, one step per candidate (``candidate_size_bytes``,
    ``candidate_val_acc``, ...), the written files, the chosen candidate's numbers as final metrics (csv:
    ``OUT/metrics.csv``). Raises ValueError (before any work) for a budget without bytes, a runtime not installed,
    a latency below every runtime's per-call overhead, a time budget shorter than one candidate, a run without
    data, streamed data with a bad item, no validation split or a shuffling validation DataLoader; TypeError for
    data of another type; :class:`SearchBudgetError` (a ValueError; its ``result`` holds everything) when no
    candidate fits.
    """
    from compress.search.report import describe_budget, write_outputs
    from compress.study.lock import folder_lock

    t_start = time.perf_counter()
    config = config or SearchConfig()
    say = log or (lambda line: None)
    _check_budget(budget)
    if not isinstance(config, SearchConfig):
        raise TypeError(f"search: config must be a SearchConfig, got {type(config).__name__}")
    out = Path(out)
    src, bundle = _source(run, data, normalizer, train)
    _io.check_output_folder(out, inputs=[src.path] if src.path else [], overwrite=None)
    warn_unresolvable(len(bundle.val), config.tolerance_points)   # a tolerance under 600 / n points: one warning
    shape = tuple(src.card.input_shape)
    runtimes = _runtimes(config, budget)
    _check_latency(budget, runtimes, shape, bundle.num_classes)
    train_epochs = float(src.config.epochs)
    finetune_epochs = float(config.finetune_epochs or train_epochs)
    epoch_seconds = _epoch_seconds(src, bundle)
    dense_s = _candidate_seconds(src, bundle)
    if config.time_budget_s is not None and config.time_budget_s < dense_s:
        raise ValueError(f"--time-budget {config.time_budget_s:g} s is shorter than one candidate: writing and "
                         f"scoring one artifact of the source model takes about {dense_s:.1f} s here")
    from compress.models.sources import is_external

    scalable = not is_external(src.card.name) or bool(src.card.build_args.get("width_arg"))
    settings = _settings(src, budget, config, finetune_epochs)
    from compress.track import Tracker, check_names, make_loggers

    names = check_names(loggers)
    tracker = Tracker(make_loggers(names, out, log_dir=log_dir))   # a missing package or folder: before any work
    track = RunTracking.of(names, log_dir, out.resolve().name)
    with folder_lock(out):
        _open_folder(out, settings, overwrite)
        tracker.start(out.resolve().name, settings)
        plan = make_plan(config, max_bytes=_max_bytes(budget), models_dir=out / "models",
                         finetune_epochs=finetune_epochs, train_epochs=train_epochs, scalable=scalable,
                         epoch_seconds=epoch_seconds)
        deadline = None if config.time_budget_s is None else t_start + config.time_budget_s
        ctx = _Context(out, src, bundle, shape, config, budget, runtimes, say, deadline, dense_s)
        skipped = _train_models(ctx, plan, executor, track)
        if config.baselines and not scalable:
            skipped.append(f"scaled-int8: {src.card.name} has no width argument to scale (give the run's model one "
                           "with --width-arg), so the scaled-from-scratch baseline is left out")
        rows = _write_artifacts(ctx, plan)
        _measure_latency(ctx, rows)
        best, tied = _finish(rows, budget, config.tolerance_points)
        result = SearchResult(out, budget, rows, best, tied, time.perf_counter() - t_start, skipped)
        if best is None:
            result.nearest = nearest(rows, _max_bytes(budget), budget.max_latency_ms)
        result.files = write_outputs(result, ctx)
        _track_search(tracker, result)
    if best is None:
        raise SearchBudgetError(f"no candidate meets {describe_budget(budget)}; nearest: " + "; ".join(
            f"{c.id} ({c.size_bytes:,} B" + (f", {c.latency_ms:.3f} ms" if c.latency_ms is not None else "") + ")"
            for c in result.nearest), result)
    return result


@dataclass
class _Context:
    out: Path
    src: Any
    bundle: Any
    shape: tuple
    config: SearchConfig
    budget: Budget
    runtimes: list[str]
    say: Callable[[str], None]
    deadline: float | None
    candidate_s: float
    _meta: dict | None = None
    _calibration: tuple | None = None

    @property
    def eval_batch_size(self) -> int:
        """Images per batch when scoring streamed data (:func:`compress.train.loop.eval_batch_size`)."""
        from compress.train.loop import eval_batch_size

        return eval_batch_size(self.src.config, self.bundle)

    def calibration(self) -> tuple:
        """``(data, normalizer)`` for latency's int8 calibration (:func:`compress.search.measure.calibration_data`:
        streamed data read once, for every artifact)."""
        from compress.search.measure import calibration_data

        if self._calibration is None:
            self._calibration = calibration_data(self.bundle, self.src.normalizer)
        return self._calibration

    def meta(self) -> dict:
        from compress.export.runs import run_meta

        if self._meta is None:   # one provenance record (it hashes the data) for every artifact of the search
            self._meta = run_meta(self.src)
        return self._meta

    def save_options(self) -> dict:
        return {"input_shape": self.shape, "normalizer": self.src.normalizer,
                "class_names": list(self.src.class_names)}

    def left(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.perf_counter()


def _epoch_seconds(src, bundle) -> float:
    m = src.metrics or {}
    seconds, epochs = m.get("train_seconds"), m.get("epochs_run")
    if isinstance(seconds, (int, float)) and isinstance(epochs, (int, float)) and epochs > 0 and seconds > 0:
        return float(seconds) / float(epochs)
    from compress.budget import mac_count

    return mac_count(src.model, tuple(src.card.input_shape)) * len(bundle.train) * 3 / 2e9   # ~2 GMAC/s


def _candidate_seconds(src, bundle) -> float:
    """About how long writing and scoring one artifact of the source model takes: one timed pass over 256 images,
    scaled to the validation and test splits, plus writing the file. Streamed data: its first validation batch (at
    most 256 images, and no more than an evaluation batch), the reading timed with the inference (a stream pays
    both for every image it scores)."""
    import torch

    from compress.data.torch_data import StreamSplit
    from compress.export.artifact import serialize
    from compress.train.inference import logits
    from compress.train.loop import eval_batch_size

    if isinstance(bundle.val, StreamSplit):
        count = min(256, eval_batch_size(src.config, bundle))
        t0 = time.perf_counter()
        stream = bundle.val.batches(count, limit=count)
        x, _ = next(stream)
        stream.close()                     # a DataLoader's workers end now
    else:
        x = bundle.val.x[:256]
        t0 = time.perf_counter()
    with torch.no_grad():
        logits(src.model, x, src.normalizer)
    per_image = (time.perf_counter() - t0) / max(1, len(x))
    t1 = time.perf_counter()
    serialize(src.model, codec="fp16", compression="store")
    n = len(bundle.val) + (len(bundle.test) if bundle.test is not None else 0)
    return per_image * n + 2 * (time.perf_counter() - t1)


# ------------------------------------------------------------------------------------------------- phase 1
def _train_models(ctx: _Context, plan: Plan, executor, track: RunTracking | None = None) -> list[str]:
    """Run the plan's tasks not done yet, the first ones first while the time budget allows; returns what was
    skipped or failed, one line each. ``track``: the loggers each trained model makes (``Worker``'s)."""
    from compress.search.tasks import Worker, state_bytes

    records_dir = ctx.out / "models"
    # a model that failed is tried again by the next run (as a sweep retries its failed points): a worker lost with
    # its process fails once, a budget a lever cannot reach fails again, quickly
    done = {k: v for k, v in _read_records(records_dir).items() if "kind" in v and not v.get("error")}
    skipped: list[str] = []
    worker = Worker(ctx.bundle, state_bytes(ctx.src.model), ctx.src.normalizer, _train_dict(ctx.src),
                    meta=ctx.meta(), save_options=ctx.save_options(), format=ctx.config.format,
                    seed=ctx.config.seed, threads=ctx.config.threads, track=track)
    jobs = max(1, getattr(executor, "jobs", 1))
    reserve = ctx.candidate_s * (len(plan.specs) + 5) * 1.5
    waves = [[t for t in plan.tasks if t.task_id not in plan.after], [t for t in plan.tasks if t.task_id in plan.after]]
    for wave_no, wave in enumerate(waves):
        todo = []
        budget_s = ctx.left() - reserve
        for t in wave:
            if t.task_id in done:
                continue
            parent = plan.after.get(t.task_id)
            if parent is not None:
                rec = done.get(parent)
                if rec is None or rec.get("error"):
                    skipped.append(f"{t.task_id}: its parent {parent} was not made")
                    continue
                from compress.train.runs import load_run

                t = _with_parent(t, state_bytes(load_run(records_dir / parent).model))
            if t.cost / jobs > budget_s:
                skipped.append(f"{t.task_id}: left out by the time budget (about {t.cost:.0f} s)")
                continue
            budget_s -= t.cost / jobs
            todo.append(t)
        if not todo:
            continue
        ctx.say(f"models{' (second wave)' if wave_no else ''}: training {len(todo)} "
                f"({', '.join(t.task_id for t in todo)})")
        run = executor.run if executor is not None else _sequential
        order = sorted(todo, key=lambda t: -t.cost) if jobs > 1 else todo
        for made in run(worker, order):
            _io.write_json(records_dir / f"{made['task_id']}.json", made)
            done[made["task_id"]] = made
            if made.get("error"):
                skipped.append(f"{made['task_id']}: {made['error']}")
                ctx.say(f"  {made['task_id']}: failed: {made['error']}")
            else:
                ctx.say(f"  {made['task_id']}: done in {made['seconds']:.0f} s")
    return skipped


def _track_search(tracker, result: SearchResult) -> None:
    """The search as one tracked run: a step per candidate, the files written, the chosen one's numbers."""
    if not tracker:
        return
    fields = ("size_bytes", "param_count", "macs", "val_acc", "test_acc", "latency_ms", "fits", "front", "chosen")
    for step, c in enumerate(result.candidates, 1):
        tracker.log_metrics(step, {f"candidate_{k}": getattr(c, k) if not isinstance(getattr(c, k), bool)
                                   else float(getattr(c, k)) for k in fields})
    for path in result.files.values():
        if Path(path).is_file():
            tracker.log_artifact(path)
    best = result.best
    final = {"candidates": len(result.candidates), "fit": sum(c.fits for c in result.candidates),
             "seconds": result.seconds}
    if best is not None:
        final.update({k: getattr(best, k) for k in fields[:6]})
    tracker.finish(final)


def _sequential(fn, tasks):
    for t in tasks:
        yield fn(t)


def _with_parent(task, blob: bytes):
    from dataclasses import replace

    return replace(task, parent=blob)


def _train_dict(src) -> dict:
    from dataclasses import asdict

    return asdict(src.config)


# ------------------------------------------------------------------------------------------------- phase 2
def _write_artifacts(ctx: _Context, plan: Plan) -> list[Candidate]:
    """Every spec whose model exists, written, reloaded and scored (records kept in ``candidates/``)."""
    from compress.search.measure import score

    records = _read_records(ctx.out / "candidates")
    models = _read_records(ctx.out / "models")
    rows: list[Candidate] = []
    loaded: dict[str, Any] = {}
    for spec in plan.specs:
        rec = records.get(spec.file_stem)
        if rec is not None:
            try:
                rows.append(Candidate.from_dict(rec))
                continue
            except (TypeError, ValueError):
                pass        # a record of another version: scored again
        if spec.model != "dense" and (spec.model not in models or models[spec.model].get("error")):
            continue
        if spec.model != "dense" and ctx.left() < ctx.candidate_s:   # the baseline is always measured
            ctx.say(f"  {spec.id}: left out by the time budget")
            continue
        c = Candidate(spec.id, spec.model, spec.codec, spec.method, parent=None if spec.model == "dense" else
                      plan.after.get(spec.model, "dense"))
        path = ctx.out / "artifacts" / f"{spec.file_stem}.{ctx.config.format}"
        t0 = time.perf_counter()
        try:
            _write_one(ctx, spec, path, loaded)
            c.artifact = str(path.relative_to(ctx.out))
            c.seconds = time.perf_counter() - t0
            score(c, path, ctx.bundle, ctx.src.normalizer, ctx.shape, batch_size=ctx.eval_batch_size)
        except ValueError as exc:   # a codec refusing the weights (outliers, overflow): recorded, not fatal
            c.error = str(exc)
        c.fits_bytes = c.size_bytes is not None and c.size_bytes <= _max_bytes(ctx.budget)
        _io.write_json(ctx.out / "candidates" / f"{spec.file_stem}.json", c.to_dict())
        rows.append(c)
        ctx.say(_progress_line(c, rows, ctx.budget))
    return rows


def _write_one(ctx: _Context, spec: Spec, path: Path, loaded: dict) -> None:
    from compress.export.artifact import save
    from compress.quant.api import CodecConfig

    if spec.codec == "deep":
        shutil.copyfile(ctx.out / "models" / spec.model / f"artifact.{ctx.config.format}", path)
        return
    if spec.model not in loaded:
        from compress.train.runs import load_run

        loaded.clear()      # one model in memory at a time: the specs come grouped by model
        loaded[spec.model] = ctx.src.model if spec.model == "dense" else load_run(ctx.out / "models" / spec.model).model
    save(loaded[spec.model], path, config=CodecConfig.parse(spec.codec), format=ctx.config.format, meta=ctx.meta(),
         **ctx.save_options())


def _progress_line(c: Candidate, rows: list[Candidate], budget: Budget) -> str:
    if c.error:
        return f"  {c.id}: refused: {c.error[:100]}"
    front = sorted(pareto_front([r for r in rows if not r.error], axes=("size_bytes",)), key=lambda r: _scored(r)[0])
    shown = ", ".join(f"{_scored(r)[0] / 1000:.0f} kB {100 * _scored(r)[1]:.1f}%" for r in front[-5:])
    fits = "fits" if c.fits_bytes else "over"
    size_bytes, val_acc = _scored(c)
    return (f"  {c.id}: {size_bytes:,} B ({fits}), val {100 * val_acc:.2f}% | front ({len(front)}): {shown}")


def _scored(c: Candidate) -> tuple[int, float]:
    """Bytes and validation accuracy of a candidate written and scored (one without an error)."""
    assert c.size_bytes is not None and c.val_acc is not None
    return c.size_bytes, c.val_acc


# ------------------------------------------------------------------------------------------------- phase 3
def _measure_latency(ctx: _Context, rows: list[Candidate]) -> None:
    from compress.search.measure import latencies

    todo = [r for r in rows if not r.error and not r.latencies and (r.fits_bytes or r.method == "dense")]
    if todo:
        ctx.say(f"latency: {len(todo)} artifacts on {', '.join(ctx.runtimes)} (batch {ctx.budget.batch_size}, "
                f"{ctx.budget.threads} thread(s))")
    data, normalizer = ctx.calibration() if todo else (None, None)
    for r in todo:
        if ctx.left() < 0 and r.method != "dense":
            ctx.say(f"  {r.id}: latency left out by the time budget")
            continue
        t0 = time.perf_counter()
        assert r.artifact is not None   # written: a candidate without an error
        r.latencies = latencies(ctx.out / r.artifact, r.codec, ctx.runtimes, ctx.shape,
                                batch_size=ctx.budget.batch_size, threads=ctx.budget.threads,
                                warmup=ctx.config.latency_warmup, repeats=ctx.config.latency_repeats,
                                bundle=data, normalizer=normalizer)
        r.seconds += time.perf_counter() - t0
        timed = {k: v for k, v in r.latencies.items() if isinstance(v, (int, float))}
        if timed:
            r.runtime = min(timed, key=timed.__getitem__)
            r.latency_ms = timed[r.runtime]
        _io.write_json(ctx.out / "candidates" / f"{Spec(r.model, r.codec, r.method).file_stem}.json", r.to_dict())
        ms = f"{r.latency_ms:.3f} ms on {r.runtime}" if r.latency_ms is not None else "no runtime passed its check"
        ctx.say(f"  {r.id}: {ms}")


def _finish(rows: list[Candidate], budget: Budget, tolerance_points: float
            ) -> tuple[Candidate | None, list[Candidate]]:
    for r in rows:
        r.fits_bytes = r.size_bytes is not None and r.size_bytes <= _max_bytes(budget)
        r.fits_latency = None if budget.max_latency_ms is None else (
            r.latency_ms is not None and r.latency_ms <= budget.max_latency_ms)
        r.fits = not r.error and r.fits_bytes and r.fits_latency is not False
        r.front = r.chosen = False
    axes = ("size_bytes", "latency_ms")
    for r in pareto_front([r for r in rows if not r.error], axes=axes):
        r.front = True
    best, tied = choose(rows, tolerance_points)
    if best is not None:
        best.chosen = True
    return best, tied

