"""A model's description apart from its weights: the :class:`ModelCard`.

Every model made by :func:`compress.models.create` carries one as ``model.card`` (a declared field of
:class:`CardedModel`, the base of ``ConvNet`` and ``MLP``). Artifacts, run folders, sweeps, latency and explain
read the architecture, the input shape and the transforms applied from it, through :func:`card_of` or a
``card=`` argument for models that have none. A transform that changes a model's layers returns the model with
a rewritten card (``card.replace(...)``): BatchNorm folding records ``bn_folded``; pruning records the widths
it changed (``build_args["widths"]``). A card is plain data: :func:`compress.models.rebuild` builds its model.

Cards are read from files (artifacts, run folders), so what they declare about the input is bounded before any
tensor is made from it: ``input_size`` at most :data:`MAX_INPUT_SIZE` pixels a side and ``in_chans`` at most
:data:`MAX_IN_CHANS`, the limits the data readers put on images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

__all__ = ["ModelCard", "CardedModel", "card_of", "MAX_INPUT_SIZE", "MAX_IN_CHANS"]

MAX_INPUT_SIZE = 4096   # pixels a side: images read are at most 4096x4096 (compress.data.readers.MAX_IMAGE_PIXELS)
MAX_IN_CHANS = 64       # channels of one input image (compress.data.readers.MAX_CHANNELS)


@dataclass(frozen=True)
class ModelCard:
    """How to rebuild a model and what it takes.

    ``build_args``: JSON-serializable keyword arguments such that ``compress.models.create(**build_args)`` rebuilds
    the architecture (``name`` is the registered model). ``bn_folded``: how many BatchNorm layers were folded
    into the conv/linear layer before them (0: none); a model rebuilt from ``build_args`` must be folded the same
    way before the weights fit.
    """

    build_args: Mapping[str, Any]
    bn_folded: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.build_args, Mapping) or not isinstance(self.build_args.get("name"), str):
            raise ValueError(f"ModelCard.build_args must be a dict with a model 'name', got {self.build_args!r}")
        if isinstance(self.bn_folded, bool) or not isinstance(self.bn_folded, int) or self.bn_folded < 0:
            raise ValueError(f"ModelCard.bn_folded must be a non-negative int, got {self.bn_folded!r}")
        for key, limit in (("input_size", MAX_INPUT_SIZE), ("in_chans", MAX_IN_CHANS)):
            value = self.build_args.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit):
                raise ValueError(f"ModelCard.build_args {key} must be an int from 1 to {limit}, got {str(value)[:40]}")
        object.__setattr__(self, "build_args", dict(self.build_args))

    @property
    def name(self) -> str:
        return self.build_args["name"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one input image (``create``'s defaults where ``build_args`` leaves them out)."""
        size = self.build_args.get("input_size", 48)
        return (int(self.build_args.get("in_chans", 1)), int(size), int(size))

    @property
    def num_classes(self) -> int:
        return int(self.build_args.get("num_classes", 7))

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"build_args": dict(self.build_args), "bn_folded": self.bn_folded}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelCard":
        """Inverse of :meth:`to_dict`; raises ValueError for anything else."""
        if not isinstance(d, Mapping) or not set(d) <= {"build_args", "bn_folded"} or "build_args" not in d:
            raise ValueError(f"not a model card: {d!r}")
        return cls(build_args=d["build_args"], bn_folded=d.get("bn_folded", 0))


class CardedModel(nn.Module):
    """Base of the models :func:`compress.models.create` builds: ``card`` describes the model (None if unset)."""

    card: ModelCard | None = None


def card_of(model: nn.Module) -> ModelCard | None:
    """The model's card, or None for a model not built by :func:`compress.models.create` (a model from
    :mod:`compress.models.sources` carries its card as a plain attribute)."""
    card = getattr(model, "card", None) if isinstance(model, nn.Module) else None
    return card if isinstance(card, ModelCard) else None
