"""The trained models of a search, as executor tasks: each one is self-contained and picklable, writes one folder
and returns a small dict, so the local pool and Ray run them alike (Ray ships the folder back: no shared disk).

Three kinds (:class:`ModelTask`):

- ``prune``: the parent (the source model, or a state carried in the task) structurally pruned to the byte budget as
  stored with one codec (:func:`compress.prune.prune` with a :class:`~compress.budget.Budget` measured on the real
  file), then fine-tuned with :func:`compress.train.fit`, distilled from the source model when asked. Writes a run
  folder (``compress.run/2``): the search's children and any other command read it.
- ``scaled``: the source's family scaled to the budget (:func:`compress.models.scaling.scale_to`) and trained from
  scratch with the source run's own settings: the "scaled to the budget" single-method result. A run folder too.
- ``deep``: Deep Compression (:class:`compress.quant.DeepConfig`) of a parent into the budget. Writes
  ``artifact.<format>``: its sparse, per-layer-coded weights are the candidate.

:class:`Worker` holds what every task shares (the data, the source model, the artifact options) and is shipped once
per worker process. With ``track`` (logger names, a log folder, the search's name) each ``prune`` and ``scaled``
model is a tracked run of its own (:mod:`compress.track`): ``SEARCH/TASK``, its epochs, its run folder's files.
The loggers are made in the worker's process; TensorBoard and MLflow write under the log folder on the machine
that trains (a Ray worker on another node keeps them there: only ``run_dir`` travels back).
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compress.track import RunTracking

__all__ = ["ModelTask", "Worker", "state_bytes", "model_from_bytes"]

KINDS = ("prune", "scaled", "deep")


@dataclass(frozen=True, kw_only=True)
class ModelTask:
    """One model the search trains. ``run_dir`` is the folder it writes (``RayExecutor`` relocates it)."""

    task_id: str
    kind: str                     # "prune" | "scaled" | "deep"
    run_dir: str
    max_bytes: int                # the byte budget this model is made for
    storage: str = "int8+fold"    # prune / scaled: the codec the budget is measured with
    importance: str = "l1"        # prune: channel importance
    scope: str = "uniform"        # prune: "uniform" (same ratio per group) | "global" (one ranking)
    distill: bool = True          # prune: fine-tune against the source model's soft targets
    epochs: float = 1.0           # prune: fine-tuning passes; scaled: training passes
    lr: float | None = None       # prune: peak learning rate (None: the source run's)
    parent: bytes | None = None   # deep: the parent model (state_bytes); None: the source model
    deep: dict = field(default_factory=dict)   # deep: DeepConfig settings
    cost: float = 1.0             # relative cost, for ordering (longest first) and the time budget

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"ModelTask {self.task_id}: kind must be one of {KINDS}, got {self.kind!r}")


def state_bytes(model) -> bytes:
    """A model as ``torch.save({"card", "state"})`` bytes: what a task carries and :func:`model_from_bytes` reads
    (``weights_only``: plain tensors and dicts, nothing executed)."""
    import torch

    from compress.models.card import card_of

    card = card_of(model)
    if card is None:
        raise ValueError(f"{type(model).__name__}: a model without a card cannot travel between processes")
    buf = io.BytesIO()
    torch.save({"card": card.to_dict(), "state": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, buf)
    return buf.getvalue()


def model_from_bytes(blob: bytes):
    import torch

    from compress.models import rebuild
    from compress.models.card import ModelCard

    d = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    model = rebuild(ModelCard.from_dict(d["card"]))
    model.load_state_dict(d["state"])
    return model.eval()


class Worker:
    """Runs :class:`ModelTask`s: ``worker(task) -> dict`` (``seconds``, ``kind``, what the task made).

    Holds the data (a bundle, or streamed :class:`~compress.data.torch_data.TorchData`: pruning, fine-tuning and
    Deep Compression read it batch by batch), the source run's model (as bytes: rebuilt once per process), its
    normalizer and training settings, and the artifact options (``meta``, ``save_options``, ``format``)."""

    def __init__(self, bundle, source: bytes, normalizer, train: dict, *, meta: dict, save_options: dict,
                 format: str, seed: int, threads: int | None, track: RunTracking | None = None) -> None:
        self.bundle, self.source, self.normalizer, self.train = bundle, source, normalizer, train
        self.meta, self.save_options, self.format, self.seed, self.threads = meta, save_options, format, seed, threads
        self.track = track
        self._model = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def source_model(self):
        if self._model is None:
            self._model = model_from_bytes(self.source)
        return self._model

    def file_bytes(self, storage):
        """``model -> bytes`` of its artifact with ``storage`` (a CodecConfig), written exactly as the search will
        write it (stored, not deflated: a deflated file can only be smaller)."""
        from compress.export.artifact import serialize

        return lambda model: len(serialize(model, config=storage, format=self.format, compression="store",
                                           meta=self.meta, **self.save_options))

    def __call__(self, task: ModelTask) -> dict:
        from compress.device import torch_threads

        t0 = time.perf_counter()
        with torch_threads(self.threads):
            try:
                made = getattr(self, f"_{task.kind}")(task)
            except ValueError as exc:   # a budget the lever cannot reach, a codec refusing weights: a result
                made = {"error": str(exc)}
        made.update(task_id=task.task_id, kind=task.kind, seconds=time.perf_counter() - t0)
        return made   # the driver records it (models/ID.json): under Ray only run_dir comes back

    def failed(self, task: ModelTask, error) -> dict:
        return {"task_id": task.task_id, "kind": task.kind, "error": str(error), "seconds": 0.0}

    def _tracker(self, task: ModelTask, config):
        """The task's loggers, started (None without ``track``)."""
        if self.track is None:
            return None
        return self.track.start(task.run_dir, task.task_id,
                                {"task": dataclasses.asdict(dataclasses.replace(task, parent=None)),
                                 "train": dataclasses.asdict(config)}, keep_open=True)

    @staticmethod
    def _track_end(tracker, run) -> None:
        from compress.train.fitting import log_run

        if tracker is not None:
            log_run(tracker, run)

    # ------------------------------------------------------------------------------------------- the kinds
    def _train_config(self, epochs: float, lr: float | None):
        from compress.train import TrainConfig

        cfg = {**self.train, "epochs": epochs, "seed": self.seed, "threads": None, "teacher": None,
               "patience": None}
        if lr is not None:
            cfg["lr"] = lr
        return TrainConfig.from_dict(cfg)

    def _prune(self, task: ModelTask) -> dict:
        from compress.budget import Budget
        from compress.prune import PruneConfig, prune
        from compress.quant.api import CodecConfig
        from compress.train import fit
        from compress.train.runs import write_run

        source = self.source_model()
        storage = CodecConfig.parse(task.storage)
        budget = Budget(max_bytes=task.max_bytes, file_format=f"{self.format}:{storage.label}")
        config = PruneConfig(budget=budget, importance=task.importance, global_ranking=task.scope == "global",
                             seed=self.seed)
        result = prune(source, config, data=self.bundle, normalizer=self.normalizer,
                       file_bytes=self.file_bytes(storage))
        train = self._train_config(task.epochs, task.lr)
        tracker = self._tracker(task, train)
        run = fit(result.model, self.bundle, train, teacher=source if task.distill else None,
                  normalizer=self.normalizer, progress=False, loggers=tracker)
        run.info["prune"] = {"source": "search", "config": config.to_dict(), **result.to_dict()}
        run.info["search"] = {"task": dataclasses.asdict(dataclasses.replace(task, parent=None))}
        write_run(run, Path(task.run_dir), overwrite=True)
        self._track_end(tracker, run)
        return {"run": Path(task.run_dir).name, "prune": {"before": result.before, "after": result.after}}

    def _scaled(self, task: ModelTask) -> dict:
        import torch

        from compress.budget import Budget
        from compress.models import scaling
        from compress.models.card import card_of
        from compress.quant.api import CodecConfig
        from compress.train import fit
        from compress.train.runs import write_run

        card = card_of(self.source_model())
        assert card is not None   # search refuses a source model without a card
        kw = {k: v for k, v in card.build_args.items() if k not in ("name", "width_mult", "widths")}
        storage = CodecConfig.parse(task.storage)
        budget = Budget(max_bytes=task.max_bytes, file_format=f"{self.format}:{storage.label}")
        sized = scaling.scale_to(card.name, budget, file_bytes=self.file_bytes(storage), **kw)
        torch.manual_seed(self.seed)
        train = self._train_config(task.epochs, None)
        tracker = self._tracker(task, train)
        run = fit(sized.create(), self.bundle, train, normalizer=self.normalizer, progress=False, loggers=tracker)
        run.info["search"] = {"task": dataclasses.asdict(task), "width_mult": sized.width_mult}
        write_run(run, Path(task.run_dir), overwrite=True)
        self._track_end(tracker, run)
        return {"run": Path(task.run_dir).name, "width_mult": sized.width_mult}

    def _deep(self, task: ModelTask) -> dict:
        from compress.export.artifact import save, serialize
        from compress.quant import DeepConfig, quantize

        parent = model_from_bytes(task.parent) if task.parent is not None else self.source_model()
        config = DeepConfig(**{"seed": self.seed, **task.deep})
        aug = self._train_config(1, None).augment_config(self.bundle.flip_invariant)
        made = quantize(parent, config, data=self.bundle, normalizer=self.normalizer, max_bytes=task.max_bytes,
                        aug=aug, file_bytes=lambda m, plan: len(serialize(
                            m, plan=plan, format=self.format, meta=self.meta, **self.save_options)))
        folder = Path(task.run_dir)
        folder.mkdir(parents=True, exist_ok=True)
        save(made.model, folder / f"artifact.{self.format}", config=made.storage, format=self.format, meta=self.meta,
             **self.save_options)
        return {"artifact": f"artifact.{self.format}", "log": list(made.log)}
