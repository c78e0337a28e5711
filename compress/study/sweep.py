"""Parameter-vs-accuracy sweeps: size each family to each parameter budget along each scaling policy, train all
seeds of the point together (:func:`compress.train.fit_many`), record.

A sweep folder::

    sweep.json        the SweepConfig and the environment; a rerun with another config is refused
    sweep.lock        while a sweep runs: its PID and host (compress.study.lock); a second sweep here is refused
    sizing.json       family x policy x budget -> the sized model and its figures (compress.models.scaling)
    records/ID.json   one finished run's record (one seed of one point), written atomically: the source of truth
    failed/ID.json    a run that raised: what it was and the error; a rerun tries it again
    runs/ID/          the run folder (compress.train) of each run
    results.json      {"config", "records", "skipped", "failed"} regenerated from records/ after every run
    results.csv       the records as a table

Kill-safe and resumable: a run counts as finished only once its record is written (atomically), and results
files are rewritten atomically from the records, so killing the sweep at any moment loses at most the runs in
flight; rerunning the same command skips finished runs and redoes interrupted ones.

The unit of work is a :class:`PointTask`: one point (family, budget, policy, variant) with all its seeds, trained
as one stacked model. Points go through an executor (:mod:`compress.study.executors`): in this process, or a local
process pool, or a Ray cluster (:mod:`compress.study.ray_executor`); anything with the same ``run(fn, tasks)``
method (yielding results as they finish) can take them. ``fn`` is a :class:`Trainer`: it carries the data bundle
(loaded once, here) and turns a point that raises into failed records, so one bad point does not stop the others;
``execute(task)`` returns the point's records, one per seed.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from compress import _io
from compress.device import environment
from compress.models.card import ModelCard
from compress.study.executors import Executor, SequentialExecutor
from compress.study.lock import folder_lock
from compress.study.results import SWEEP_FORMAT, load_results
from compress._settings import from_known

__all__ = ["SweepConfig", "PointTask", "Trainer", "run_sweep", "execute", "train_seeds", "load_data", "read_records",
           "clean_partial_runs", "ABLATIONS", "CSV_COLUMNS"]

ABLATIONS = {"augment": {"augment": False}, "normalize": {"normalize": False}}
CSV_COLUMNS = ["run_id", "family", "budget", "policy", "variant", "seed", "width_mult", "depth_mult", "input_size",
               "param_count", "macs", "bytes_fp32", "bytes_fp16", "bytes_int8", "val_acc", "test_acc", "best_epoch",
               "epochs", "converged", "train_seconds", "latency_ms", "latency_runtime", "n_val", "n_test"]


@dataclass
class SweepConfig:
    """What a sweep trains. Budgets are parameter counts; ``train`` holds extra TrainConfig settings."""

    data: str = "default"
    families: tuple[str, ...] = ("mobilenet_v1", "cnn", "mlp")
    budgets: tuple[int, ...] = (5_000, 20_000, 80_000)
    # The default study: the digits at half their side (14x14), each family sized by EfficientNet's compound rule
    # (depth and width) and, as the ablation, by its width only; 5 seeds trained together; converged by early
    # stopping within 15 epochs. Half the side keeps the study within 5 minutes on 2 cores.
    resolution: float = 0.5              # images resized to this fraction of their side (1: as stored)
    policies: tuple[str, ...] = ("compound", "width")   # scaling policies (scaling.POLICIES), each a point
    min_channels: int = 8                # for the "min_channels" policy
    seeds: int = 5                       # seeds 0 .. seeds-1 per point, trained together as one stacked model
    epochs: int = 15                     # the most epochs a run trains (the cosine schedule spans them)
    patience: int | None = 4             # early stopping: epochs without a validation gain above min_delta
    min_delta: float = 0.005             # accuracy gain (fraction) that resets patience: 2 of 400 validation images
    batch_size: int = 128                # images per step
    lr: float = 1e-2                     # peak learning rate (AdamW, cosine)
    ablate: tuple[str, ...] = ()         # "augment", "normalize": the same model with each switched off
    ablate_family: str = "cnn"
    ablate_budget: int | None = None     # default: the largest budget
    ablate_policy: str | None = None     # default: the first policy
    latency: bool = True                 # CPU latency at batch 1, 1 thread, eager
    val_fraction: float = 0.1
    data_seed: int = 0                   # the train/validation split is the same for every run
    channel_divisor: int | None = 1      # 1: any channel count, so families match the budgets closely
    train: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from compress.models import list_models
        from compress.train import TrainConfig

        from compress.models.scaling import POLICIES

        self.families = tuple(self.families)
        self.budgets = tuple(sorted(int(b) for b in self.budgets))
        self.ablate = tuple(self.ablate)
        self.policies = tuple(self.policies)
        if not self.policies or len(set(self.policies)) != len(self.policies):
            raise ValueError(f"sweep: give distinct policies, got {list(self.policies)}")
        for p in self.policies + ((self.ablate_policy,) if self.ablate_policy is not None else ()):
            if p not in POLICIES:
                raise ValueError(f"sweep: unknown policy {p!r}; known: {', '.join(POLICIES)}")
        if isinstance(self.min_channels, bool) or not isinstance(self.min_channels, int) or self.min_channels < 1:
            raise ValueError(f"sweep: min_channels must be a positive int, got {self.min_channels!r}")
        known = list_models()
        for f in self.families + ((self.ablate_family,) if self.ablate else ()):
            if f not in known:
                raise ValueError(f"sweep: unknown family {f!r}; known: {', '.join(known)}")
        if not self.families:
            raise ValueError("sweep: no families given")
        if not self.budgets or any(b <= 0 for b in self.budgets):
            raise ValueError(f"sweep: budgets must be positive parameter counts, got {list(self.budgets)}")
        for a in self.ablate:
            if a not in ABLATIONS:
                raise ValueError(f"sweep: unknown ablation {a!r}; known: {', '.join(ABLATIONS)}")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, (int, float)) \
                or not 0 < self.resolution <= 1:
            raise ValueError(f"sweep: resolution must be a fraction of the image side in (0, 1], got "
                             f"{self.resolution!r}")
        if not 0 <= self.min_delta < 1:
            raise ValueError(f"sweep: min_delta must be an accuracy gain in [0, 1), got {self.min_delta!r}")
        if self.seeds < 1 or self.epochs < 1:
            raise ValueError(f"sweep: seeds and epochs must be >= 1, got seeds={self.seeds}, epochs={self.epochs}")
        if self.ablate_budget is not None and self.ablate_budget <= 0:
            raise ValueError(f"sweep: ablate_budget must be positive, got {self.ablate_budget}")
        TrainConfig.from_dict(self.train_settings(0, {}))   # validates the training settings

    @property
    def data_options(self) -> dict:
        """Options for ``compress.data.load``: one split for every run (the images as stored)."""
        return {"val_fraction": self.val_fraction, "seed": self.data_seed}

    def sized_options(self, native: int) -> dict:
        """``data_options`` with the images resized to ``resolution`` of their side ``native`` (at least 8 px)."""
        if self.resolution == 1:
            return self.data_options
        return {**self.data_options, "input_size": max(8, round(native * self.resolution))}

    def train_settings(self, seed: int, overrides: dict) -> dict:
        extra = {"patience": self.patience, "min_delta": self.min_delta} if self.patience is not None else {}
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "seed": seed, **extra,
                **self.train, **overrides}

    @property
    def ablation_point(self) -> tuple[str, int, str]:
        """(family, budget, policy) of the ablation runs."""
        return (self.ablate_family, self.ablate_budget or max(self.budgets), self.ablate_policy or self.policies[0])

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("families", "budgets", "ablate", "policies"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SweepConfig":
        return from_known(cls, d)


@dataclass(frozen=True)
class PointTask:
    """One point with all its seeds, self-contained and picklable (what an executor ships to a worker).

    The seeds train together as one stacked model (``compress.train.fit_many``); ``seeds`` holds only those
    still to run, and ``run_dirs`` one run folder per seed."""

    point_id: str              # "family-budget-policy-variant"
    family: str
    budget: int
    policy: str
    variant: str               # "full" or "no_<ablation>"
    seeds: tuple[int, ...]
    card: ModelCard            # the model sized for this budget and policy
    macs: int                  # from the sizing (batch 1)
    train: dict                # TrainConfig settings (seed: the first seed)
    data: str
    data_options: dict         # the point's data (the policy may have chosen the input size)
    run_dirs: tuple[str, ...]

    def run_id(self, seed: int) -> str:
        return f"{self.point_id}-s{seed}"


# ------------------------------------------------------------------------------------------- one point

_DATA_CACHE: dict = {}


def load_data(source: str, options: dict):
    """``compress.data.load(source, **options)``, cached per process (the last 4 kept): a worker process loads each
    data set once for all the tasks it runs."""
    from compress.data import load

    key = (source, json.dumps(options, sort_keys=True))
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 4:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = load(source, **options)
    return _DATA_CACHE[key]


def execute(task: PointTask, bundle: Any = None) -> list[dict]:
    """Train one point's seeds together and measure each; returns their records. Module-level so worker
    processes can run it. ``bundle``: the task's data, already loaded (default: load ``task.data`` with the task's
    ``data_options`` here, cached per process)."""
    bundle = bundle if bundle is not None else load_data(task.data, task.data_options)
    runs, seconds = train_seeds(task, bundle)
    return [_record(task, seed, run, seconds, bundle) for seed, run in zip(task.seeds, runs)]


def train_seeds(task, bundle, states: tuple = ()) -> tuple[list, float]:
    """Train ``task``'s seeds together (:func:`compress.train.fit_many`) into its run folders: each seed's model is
    ``rebuild(task.card)`` after ``torch.manual_seed(seed)``, then given ``states[i]`` when ``states`` is not
    empty. Returns the runs and the training seconds per run. ``task``: a :class:`PointTask` or a pruning task."""
    import torch

    from compress.models import rebuild
    from compress.train import TrainConfig, fit_many

    members = []
    for i, seed in enumerate(task.seeds):
        torch.manual_seed(seed)
        model = rebuild(task.card)
        if states:
            model.load_state_dict(states[i])
        members.append(model)
    start = time.perf_counter()
    runs = fit_many(members, bundle, TrainConfig.from_dict(task.train), seeds=list(task.seeds),
                    outs=list(task.run_dirs), overwrite=True, progress=False)
    return runs, (time.perf_counter() - start) / len(runs)


def _record(task: PointTask, seed: int, run, seconds: float, bundle) -> dict:
    from compress.export.artifact import serialize

    model = run.model.cpu().eval()
    sizes = {codec: len(serialize(model, codec=codec, format="npz")) for codec in ("fp32", "fp16", "int8")}
    m = run.metrics
    args = task.card.build_args
    return {
        "run_id": task.run_id(seed), "family": task.family, "budget": task.budget, "policy": task.policy,
        "variant": task.variant, "seed": seed, "width_mult": args["width_mult"],
        "depth_mult": args.get("depth_mult", 1.0), "input_size": args.get("input_size"),
        "param_count": sum(p.numel() for p in model.parameters()), "macs": task.macs,
        "bytes_fp32": sizes["fp32"], "bytes_fp16": sizes["fp16"], "bytes_int8": sizes["int8"],
        "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"), "best_epoch": m.get("best_epoch"),
        "epochs": len(run.history), "converged": m.get("converged"), "members": m.get("members"),
        "train_seconds": round(seconds, 3), "latency_ms": None,
        "n_val": len(bundle.val) if bundle.val is not None else 0,
        "n_test": len(bundle.test) if bundle.test is not None else 0,
        "run_dir": os.path.relpath(run.path, Path(run.path).parent.parent),
    }


@dataclass(frozen=True)
class Trainer:
    """What a sweep hands its executor as ``fn``: :func:`execute` with the sweep's data bundles. Picklable, so an
    executor ships it once per worker (Ray: one object in its object store) and workers never read the data
    source themselves. A point that raises comes back as failed records (:meth:`failed`) instead of stopping the
    sweep; executors call :meth:`failed` too for a point they lost (its worker or node died, retries spent)."""

    bundle: Any = None          # a DataBundle for the sweep's data options; None: each worker loads task.data
    resized: tuple = ()         # ((input_size, DataBundle), ...) for points whose policy chose another resolution

    def __call__(self, task: PointTask) -> list[dict]:
        try:
            return execute(task, self._bundle(task))
        except Exception as exc:   # a point that fails on its own (a bad setting): recorded, the others go on
            return self.failed(task, exc)

    def _bundle(self, task: PointTask):
        size = task.data_options.get("input_size")
        if size is None or (self.bundle is not None and size == self.bundle.input_size):
            return self.bundle
        return dict(self.resized).get(size)      # None: execute loads it

    def failed(self, task: PointTask, error: BaseException | str) -> list[dict]:
        """The records of a point's runs that did not finish: which runs, and ``"error"`` (type and message)."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return [{"run_id": task.run_id(seed), "family": task.family, "budget": task.budget, "policy": task.policy,
                 "variant": task.variant, "seed": seed, "error": text} for seed in task.seeds]


# ------------------------------------------------------------------------------------------- the sweep

def _points(config: SweepConfig) -> list[tuple[str, int, str, str, dict]]:
    """(family, budget, policy, variant, TrainConfig overrides) of every point."""
    points = [(f, b, p, "full", {}) for f in config.families for p in config.policies for b in config.budgets]
    family, budget, policy = config.ablation_point
    points += [(family, budget, policy, f"no_{a}", ABLATIONS[a]) for a in config.ablate]
    return points


def _sizing(config: SweepConfig, out: Path, bundle) -> dict:
    """family -> policy -> budget -> Fit dict (or {"skipped": reason}); cached in sizing.json."""
    from compress.models import scaling

    path = out / "sizing.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    kw = dict(in_chans=bundle.in_chans, input_size=bundle.input_size, num_classes=bundle.num_classes)
    if config.channel_divisor is not None:
        kw["channel_divisor"] = config.channel_divisor
    changed = False
    for family, budget, policy in sorted({p[:3] for p in _points(config)}):
        entry = cached.setdefault(family, {}).setdefault(policy, {})
        if str(budget) in entry:
            continue
        try:
            entry[str(budget)] = scaling.fit(family, max_params=budget, policy=policy,
                                             min_channels=config.min_channels, **kw).to_dict()
        except ValueError as exc:
            entry[str(budget)] = {"skipped": str(exc)}
        changed = True
    if changed:
        _io.write_json(path, cached)
    return cached


def _tasks(config: SweepConfig, out: Path, sizing: dict, bundle, base_options: dict,
           finished: set[str]) -> tuple[list[PointTask], list[dict], int]:
    """The points still to train (each with its unfinished seeds), the skipped points, and the number of runs.
    ``bundle`` was loaded with ``base_options``."""
    tasks, skipped, total = [], [], 0
    for family, budget, policy, variant, overrides in _points(config):
        size = sizing[family][policy][str(budget)]
        if "skipped" in size:
            skipped.append({"family": family, "budget": budget, "policy": policy, "variant": variant,
                            "reason": size["skipped"]})
            continue
        point_id = f"{family}-{budget}-{policy}-{variant}"
        total += config.seeds
        seeds = tuple(s for s in range(config.seeds) if f"{point_id}-s{s}" not in finished)
        if not seeds:
            continue
        options = dict(base_options)
        if size["build_args"].get("input_size", bundle.input_size) != bundle.input_size:
            options["input_size"] = size["build_args"]["input_size"]      # the policy chose the resolution
        tasks.append(PointTask(point_id=point_id, family=family, budget=budget, policy=policy, variant=variant,
                               seeds=seeds, card=ModelCard(size["build_args"]), macs=size["macs"],
                               train=config.train_settings(seeds[0], overrides), data=config.data,
                               data_options=options,
                               run_dirs=tuple(str(out / "runs" / f"{point_id}-s{s}") for s in seeds)))
    return tasks, skipped, total


def _check_config(out: Path, config: SweepConfig, overwrite: bool) -> None:
    path = out / "sweep.json"
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: unreadable ({exc}); pass --overwrite to start this sweep over") from None
    old = stored.get("config", {})
    new = config.to_dict()
    if old == new:
        return
    if not overwrite:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"sweep folder {out} holds a sweep with another config (differs in: {', '.join(diff)}); "
                         "use another --out, or pass --overwrite to discard its results and start over")
    for name in ("records", "failed", "runs", "sizing.json", "results.json", "results.csv", "sweep.json"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def clean_partial_runs(out: Path, finished: set[str]) -> None:
    """Remove run folders (and fit's hidden staging folders) of runs with no record: they are redone."""
    runs = out / "runs"
    if not runs.is_dir():
        return
    for p in runs.iterdir():
        if p.name.startswith(".") or p.name not in finished:   # ".ID.partial-PID": fit's staging folder
            shutil.rmtree(p, ignore_errors=True)


def read_records(out: Path) -> list[dict]:
    """The finished runs' records in ``out/records`` (the sweep's source of truth)."""
    records = []
    for p in sorted((out / "records").glob("*.json")):
        try:
            records.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            p.unlink()   # cannot happen with atomic writes, but never let one bad file stop a resume
    return records


def _write_results(out: Path, config: SweepConfig, records: list[dict], skipped: list[dict],
                   failed: list[dict] = ()) -> None:
    order = lambda r: (r["family"], r["budget"], r.get("policy", "width"), r["variant"], r["seed"])  # noqa: E731
    records = sorted(records, key=order)
    _io.write_json(out / "results.json", {"format": SWEEP_FORMAT, "config": config.to_dict(),
                                          "records": records, "skipped": skipped,
                                          "failed": sorted(failed, key=order)})
    _io.write_csv(out / "results.csv", records, CSV_COLUMNS)


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, executor: Executor | None = None,
              overwrite: bool = False, progress: Callable[[str], None] | None = print) -> dict:
    """Run (or resume) the sweep in folder ``out``; returns the results dict (as in ``results.json``).

    Raises ValueError when ``out`` holds a sweep with another config (unless ``overwrite``, which starts over),
    and :class:`~compress.study.lock.FolderLocked` (a ValueError) while another live sweep runs in ``out``.
    """
    out = Path(out)
    with folder_lock(out):
        return _run_locked(config, out, executor, overwrite, progress)


def _run_locked(config: SweepConfig, out: Path, executor: Executor | None, overwrite: bool,
                progress: Callable[[str], None] | None) -> dict:
    _check_config(out, config, overwrite)
    bundle = load_data(config.data, config.data_options)
    if not isinstance(bundle.input_size, int):
        raise ValueError(f"{config.data}: images are {bundle.image_hw[0]}x{bundle.image_hw[1]}; sweeps need square "
                         "images")
    options = config.sized_options(bundle.input_size)
    bundle = load_data(config.data, options)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "sweep.json").exists():
        _io.write_json(out / "sweep.json", {"format": SWEEP_FORMAT, "config": config.to_dict(),
                                            "environment": environment("cpu"),
                                            "data": {"source": bundle.source, "class_names": list(bundle.class_names),
                                                     "in_chans": bundle.in_chans, "input_size": bundle.input_size,
                                                     "train": len(bundle.train), "val": len(bundle.val),
                                                     "test": len(bundle.test) if bundle.test is not None else 0}})
    sizing = _sizing(config, out, bundle)
    records = {r["run_id"]: r for r in read_records(out)}
    todo, skipped, total = _tasks(config, out, sizing, bundle, options, set(records))
    wanted = {f"{family}-{budget}-{policy}-{variant}-s{s}" for family, budget, policy, variant, _ in _points(config)
              for s in range(config.seeds)}
    records = {k: v for k, v in records.items() if k in wanted}
    clean_partial_runs(out, set(records))
    shutil.rmtree(out / "failed", ignore_errors=True)   # failed runs are tried again
    say = progress or (lambda s: None)
    for s in skipped:
        say(f"skip {s['family']} ({s['policy']}) at {s['budget']:,} params: {s['reason']}")
    if records:
        say(f"resuming: {len(records)} of {total} runs already finished")
    _write_results(out, config, list(records.values()), skipped)
    executor = executor or SequentialExecutor()
    # Longest first (MACs as the cost, plus a floor for the per-image data work): workers finish together.
    todo.sort(key=lambda t: -(t.macs + 200_000) * len(t.seeds))
    sizes = sorted({t.data_options["input_size"] for t in todo if "input_size" in t.data_options})
    resized = tuple((size, load_data(config.data, {**config.data_options, "input_size": size})) for size in sizes
                    if size != bundle.input_size)
    done, failed = len(records), {}
    for point in executor.run(Trainer(bundle, resized), todo):
        done += len(point)
        for record in point:
            if "error" in record:
                _io.write_json(out / "failed" / f"{record['run_id']}.json", record)
                failed[record["run_id"]] = record
                say(f"[{done}/{total}] {record['run_id']}: FAILED: {record['error']}")
            else:
                _io.write_json(out / "records" / f"{record['run_id']}.json", record)
                records[record["run_id"]] = record
        _write_results(out, config, list(records.values()), skipped, list(failed.values()))
        point = [r for r in point if "error" not in r]
        if not point:
            continue
        accs = ", ".join(f"{_fmt(r['test_acc'] if r['test_acc'] is not None else r['val_acc'])}" for r in point)
        first = point[0]
        say(f"[{done}/{total}] {first['run_id'].rsplit('-s', 1)[0]}: {first['param_count']:,} params, "
            f"{len(point)} seeds together: acc {accs}, {sum(r['train_seconds'] for r in point):.1f} s")
    if config.latency:
        _measure_latency(out, config, records, skipped, list(failed.values()), say)
    return load_results(out)


def _measure_latency(out: Path, config: SweepConfig, records: dict, skipped: list, failed: list, say) -> None:
    """CPU batch-1 latency (1 thread, eager, median of 30 calls) of every run that lacks it, measured here,
    one run at a time after all training: timing next to a training worker would measure the contention."""
    from compress.bench.fastest import fastest_latency
    from compress.train.runs import load_run

    todo = [r for r in records.values() if r.get("latency_ms") is None]
    for r in sorted(todo, key=lambda r: r["run_id"]):
        run = load_run(out / r["run_dir"])
        r["latency_ms"], r["latency_runtime"] = fastest_latency(run.model, run.card.input_shape, threads=1, warmup=5, repeats=30)
        _io.write_json(out / "records" / f"{r['run_id']}.json", r)
    if todo:
        _write_results(out, config, list(records.values()), skipped, failed)
        say(f"measured CPU latency (batch 1, 1 thread) of {len(todo)} runs")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
