"""Structured pruning that really shrinks the model: ``prune(model, ratio=0.5)`` returns a smaller ``nn.Module``.

Rooms, as Torch-Pruning has them: ``trace`` + ``graph`` (which channels are coupled: ``channels`` holds what a
trace records, ``ops`` the channel rule of each aten op, ``attention`` the attention modules traced whole, heads as
channels), ``importance`` (scores), ``schedule`` (which channels go, per layer or globally, over how many steps),
``surgery`` (slicing the layers), ``pruner`` (the verb), ``measure`` (the before/after quantities), ``runs``
(pruning a run folder, with fine-tuning), ``regularize`` (``BatchNormL1``: the loss term that prepares a model for
``bn`` importance, passed to ``compress.train.fit``).
"""

from compress.prune.graph import DependencyGraph, Group, build_graph
from compress.prune.importance import IMPORTANCES, importance, register_importance
from compress.prune.pruner import PruneConfig, PruneResult, prune
from compress.prune.regularize import BatchNormL1
from compress.prune.schedule import SCHEDULES, select
from compress.prune.surgery import remove_channels

__all__ = ["prune", "PruneConfig", "PruneResult", "build_graph", "DependencyGraph", "Group", "importance",
           "register_importance", "IMPORTANCES", "select", "SCHEDULES", "remove_channels",
           "BatchNormL1"]
