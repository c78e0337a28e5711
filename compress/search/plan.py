"""What a search tries: the models it trains (:class:`~compress.search.tasks.ModelTask`) and the artifacts it writes
from each (:class:`Spec`), in the order the time budget spends on them.

The levers, combined:

- structured pruning to the byte budget as stored with each codec of ``storage`` (``prune-IMPORTANCE-SCOPE-CODEC``),
  for each importance and scope, fine-tuned with distillation from the source model;
- every codec of ``codecs`` on each of those models (warm-started: a pruned, fine-tuned model is the parent of its
  stored versions);
- Deep Compression (unstructured sparsity, per-layer bit widths, Huffman coding) of a model pruned to
  ``deep_headroom`` times the budget (``deep-parent`` -> ``deep-pruned``): structure for speed, sparsity for bytes;
- the runtimes that can execute each artifact (measured later, on the search's driver alone).

The single-method results and the control (``baselines``), as ShrinkBench asks (Blalock et al. 2020): the dense
model with each codec (codec only), Deep Compression of the dense model (``deep-dense``), pruning alone
(``prune-only-fp32``: L1, no distillation, stored in fp32), the family scaled to the budget and trained from scratch
(``scaled-int8``) and pruning with random importance (``control-random-uniform-CODEC``), fine-tuned as the search's
own pruned models are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from compress.search.config import SearchConfig
from compress.search.tasks import ModelTask

__all__ = ["Spec", "Plan", "make_plan", "short"]


@dataclass(frozen=True)
class Spec:
    """One artifact to write: ``codec`` applied to ``model`` (``"deep"``: the model's own planned artifact)."""

    model: str
    codec: str
    method: str

    @property
    def id(self) -> str:
        return f"{self.model}~{self.codec}"

    @property
    def file_stem(self) -> str:
        return self.id.replace("~", "__").replace("+", "_")


@dataclass
class Plan:
    """The models in priority order (``tasks``; ``deep`` tasks whose ``parent`` is another task in ``after``) and
    the artifacts (``specs``), the dense model's first."""

    tasks: list[ModelTask]
    after: dict[str, str]            # deep task id -> the task whose model is its parent
    specs: list[Spec]
    methods: dict[str, str]          # model id -> method of its artifacts (the dense model's fp32 is "dense")


def short(codec: str) -> str:
    """``"int8+fold"`` -> ``"int8"``: a codec's name in a model id."""
    return codec.split("+")[0]


def make_plan(config: SearchConfig, *, max_bytes: int, models_dir: Path, finetune_epochs: float,
              train_epochs: float, scalable: bool, epoch_seconds: float) -> Plan:
    """The search's models and artifacts for a byte budget. ``scalable``: whether the source's architecture can be
    scaled by width (a registered family, or a model with a width argument); ``epoch_seconds``: the source's
    training time per epoch, for the tasks' relative costs."""
    tasks: list[ModelTask] = []
    specs: list[Spec] = []
    methods: dict[str, str] = {"dense": "codec"}
    after: dict[str, str] = {}
    codecs = list(dict.fromkeys(config.codecs))
    prune_cost = epoch_seconds * (finetune_epochs * (0.7 if config.distill else 0.4) + 2)

    def add(task: ModelTask, method: str, model_codecs) -> None:
        tasks.append(task)
        methods[task.task_id] = method
        specs.extend(Spec(task.task_id, c, method) for c in dict.fromkeys(model_codecs))

    def pruned(task_id: str, importance: str, scope: str, storage: str, *, distill: bool, bytes_: int,
               cost: float) -> ModelTask:
        return ModelTask(task_id=task_id, kind="prune", run_dir=str(models_dir / task_id), max_bytes=bytes_,
                         storage=storage, importance=importance, scope=scope, distill=distill,
                         epochs=finetune_epochs, lr=config.finetune_lr, cost=cost)

    specs.append(Spec("dense", "fp32", "dense"))
    specs.extend(Spec("dense", c, "codec") for c in codecs if c != "fp32")
    first = True
    for storage in config.storage:
        for importance in config.importances:
            for scope in config.scopes:
                tid = f"prune-{importance}-{scope}-{short(storage)}"
                add(pruned(tid, importance, scope, storage, distill=config.distill, bytes_=max_bytes,
                           cost=prune_cost * (1.2 if importance == "taylor" else 1.0)), "joint", [storage, *codecs])
                if first and config.baselines:   # the control: the first recipe with random importance
                    add(pruned(f"control-random-{scope}-{short(storage)}", "random", scope, storage,
                               distill=config.distill, bytes_=max_bytes, cost=prune_cost), "random",
                        [storage, *codecs])
                first = False
    deep_prune, deep_tune = config.deep_epochs(train_epochs)
    deep_settings = {"prune_epochs": deep_prune, "finetune_epochs": deep_tune}
    deep_cost = epoch_seconds * (deep_prune + deep_tune) * 1.6 + 30
    if config.deep:
        parent_bytes = int(math.floor(max_bytes * config.deep_headroom))
        add(pruned("deep-parent", "l1", "uniform", "int8+fold", distill=config.distill, bytes_=parent_bytes,
                   cost=prune_cost), "joint", codecs)
        add(ModelTask(task_id="deep-pruned", kind="deep", run_dir=str(models_dir / "deep-pruned"),
                      max_bytes=max_bytes, deep=deep_settings, cost=deep_cost / config.deep_headroom ** 0.5),
            "joint", ["deep"])
        after["deep-pruned"] = "deep-parent"
    if config.baselines:
        add(pruned("prune-only-fp32", "l1", "uniform", "fp32", distill=False, bytes_=max_bytes, cost=prune_cost),
            "prune", ["fp32"])
        if scalable:
            add(ModelTask(task_id="scaled-int8", kind="scaled", run_dir=str(models_dir / "scaled-int8"),
                          max_bytes=max_bytes, storage="int8+fold", epochs=train_epochs,
                          cost=epoch_seconds * train_epochs * 0.4 + 20), "scaled", ["int8+fold"])
        if config.deep:
            add(ModelTask(task_id="deep-dense", kind="deep", run_dir=str(models_dir / "deep-dense"),
                          max_bytes=max_bytes, deep=deep_settings, cost=deep_cost), "deep", ["deep"])
    return Plan(tasks, after, specs, methods)
