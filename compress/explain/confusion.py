"""The confusion matrix: counts, row-normalized rates, per-class accuracy, the most-confused pairs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from compress.device import model_device
from compress.data.bundle import Normalizer
from compress.explain.inputs import eval_mode, model_input, resolve_data
from compress.train.inference import predict

__all__ = ["ConfusedPair", "Confusion", "confusion", "pick_examples", "output_width"]


@dataclass(frozen=True)
class ConfusedPair:
    true: int           # true class index
    predicted: int      # predicted class index
    count: int          # images of class `true` predicted as `predicted`
    rate: float         # count / images of class `true`, in [0, 1]


@dataclass(frozen=True)
class Confusion:
    """Confusion matrix of one model on one set of images. Rows are the true class, columns the prediction."""

    counts: torch.Tensor            # int64 (K, K)
    class_names: list[str]
    labels: torch.Tensor            # int64 (N,) true class per image
    predictions: torch.Tensor       # int64 (N,) predicted class per image

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def num_classes(self) -> int:
        return self.counts.shape[0]

    @property
    def accuracy(self) -> float:
        return float(self.counts.diagonal().sum()) / max(self.total, 1)

    @property
    def matrix(self) -> torch.Tensor:
        """Row-normalized (float64): entry (i, j) is the fraction of class i predicted as j; empty rows are 0."""
        rows = self.counts.sum(1, keepdim=True).double()
        return self.counts.double() / rows.clamp(min=1)

    @property
    def support(self) -> torch.Tensor:
        """Images per true class (int64, K)."""
        return self.counts.sum(1)

    @property
    def per_class_accuracy(self) -> torch.Tensor:
        """Recall per class (float64, K); NaN for a class with no images."""
        support = self.support.double()
        return torch.where(support > 0, self.counts.diagonal().double() / support.clamp(min=1),
                           torch.full_like(support, float("nan")))

    @property
    def pairs(self) -> list[ConfusedPair]:
        """Every off-diagonal cell with a nonzero count, most images first (then highest rate)."""
        rates = self.matrix
        pairs = [ConfusedPair(i, j, int(self.counts[i, j]), float(rates[i, j]))
                 for i in range(self.num_classes) for j in range(self.num_classes)
                 if i != j and self.counts[i, j] > 0]
        return sorted(pairs, key=lambda p: (-p.count, -p.rate, p.true, p.predicted))

    def most_confused(self, k: int = 5) -> list[ConfusedPair]:
        return self.pairs[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-image arrays)."""
        acc = [None if math.isnan(a) else a for a in self.per_class_accuracy.tolist()]
        return {"class_names": self.class_names, "total": self.total, "accuracy": self.accuracy,
                "counts": self.counts.tolist(), "per_class_accuracy": acc, "support": self.support.tolist(),
                "most_confused": [{"true": self.class_names[p.true], "predicted": self.class_names[p.predicted],
                                   "count": p.count, "rate": p.rate} for p in self.pairs]}


def confusion(model: nn.Module, data: Any, *, class_names: Sequence[str] | None = None,
              normalizer: Normalizer | None = None, split: str | None = None, batch_size: int = 512) -> Confusion:
    """Confusion matrix of ``model`` on ``data``.

    ``data`` is a DataBundle (its ``split``, default test, else val), a split with ``.x`` and ``.y``, or an
    ``(x, y)`` pair. uint8 images go through ``normalizer`` (the bundle's when a bundle is given); float images
    are used as they are. Class names default to the bundle's, else ``"0"``, ``"1"``, ...; the number of
    classes is the number of names, else the model's output width.

    Raises ``ValueError`` for images not ``N,C,H,W``, labels out of range, or too few class names.
    """
    x, y, normalizer, bundle_names = resolve_data(data, split=split, normalizer=normalizer)
    pred = predict(model, x, normalizer, batch_size=batch_size)
    names = list(class_names or bundle_names or [])
    width = output_width(model, x[:1], normalizer)
    if names and width != len(names):
        raise ValueError(f"the model has {width} outputs but the data has {len(names)} classes "
                         f"({', '.join(names)})")
    k = len(names) or width
    if not names:
        names = [str(i) for i in range(k)]
    for what, v in (("labels", y), ("predictions", pred)):
        if v.min() < 0 or v.max() >= k:
            raise ValueError(f"{what} range over [{int(v.min())}, {int(v.max())}] but there are {k} classes "
                             f"({', '.join(names)})")
    counts = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    return Confusion(counts=counts, class_names=names, labels=y, predictions=pred)


@torch.no_grad()
def output_width(model: nn.Module, x: torch.Tensor, normalizer: Normalizer | None) -> int:
    """The model's number of outputs (classes), from one forward pass on ``x``."""
    with eval_mode(model):
        return model(model_input(x, normalizer, model_device(model))).shape[1]


def pick_examples(labels: torch.Tensor, predictions: torch.Tensor, *, per_class: int = 1
                  ) -> list[tuple[int, bool]]:
    """Indices of examples to show: per true class, ``per_class`` correct and ``per_class`` wrong ones when
    available (first in order). Returns ``(index, correct)`` pairs grouped by class."""
    labels, predictions = torch.as_tensor(labels), torch.as_tensor(predictions)
    if labels.shape != predictions.shape or labels.ndim != 1:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions {tuple(predictions.shape)} must be "
                         "two vectors of the same length")
    picked = []
    for c in labels.unique().tolist():
        for correct in (True, False):
            hit = (labels == c) & ((predictions == labels) == correct)
            picked += [(int(i), correct) for i in hit.nonzero().flatten()[:per_class]]
    return picked
