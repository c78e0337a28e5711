"""Batched inference: model outputs, evaluation and predictions for uint8 images, in eval mode.

The one batched-inference loop of compress: training, runs, explain, budgets and the CLI all use it. Streamed data
(:class:`~compress.data.torch_data.TorchData` and its splits, :class:`~compress.data.torch_data.StreamSplit`) is
evaluated batch by batch, never held whole: only the outputs (images x classes) are kept.
"""

from __future__ import annotations

from typing import Callable, cast

import torch
import torch.nn.functional as F
from torch import nn

from compress.data.bundle import DataBundle, Split
from compress.data.torch_data import StreamSplit, TorchData
from compress.device import model_device
from compress.train.stack import split_outputs, stack_inputs

__all__ = ["logits", "split_logits", "evaluate", "evaluate_members", "predict"]


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, normalizer: Callable[[torch.Tensor], torch.Tensor] | None = None, *,
           batch_size: int = 1024, device: torch.device | str | None = None) -> torch.Tensor:
    """Model outputs (float32, CPU) for images ``x`` (any device) in eval mode, ``batch_size`` at a time.

    ``normalizer`` turns a batch into model input (a run's ``normalizer``, a :class:`Normalizer`); uint8 images
    need one, float images without one go in as they are. ``device``: where the model runs (default: where its
    first parameter or buffer is; the CPU for a model with neither). The model's train/eval mode is restored
    afterwards. Raises TypeError for uint8 images without ``normalizer``.
    """
    if normalizer is None:
        if x.dtype == torch.uint8:
            raise TypeError("images are uint8: pass normalizer= (run.normalizer or the bundle's normalizer) to turn "
                            "them into the model's input")
        normalizer = _as_float
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    try:
        outs = [model(normalizer(x[i:i + batch_size].to(device))).float().cpu()
                for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0)


def split_logits(model: nn.Module, split: Split | StreamSplit, normalizer: Callable, *, batch_size: int = 1024,
                 device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, labels)`` (float32 and int64, CPU) of a split's images: a :class:`Split` at once, a streamed
    split batch by batch (its images are never all in memory)."""
    if isinstance(split, StreamSplit):
        outs, ys = [], []
        for xb, yb in split.batches(batch_size):
            outs.append(logits(model, xb, normalizer, batch_size=batch_size, device=device))
            ys.append(yb)
        return (torch.cat(outs), torch.cat(ys)) if outs else (torch.zeros(0), torch.zeros(0, dtype=torch.long))
    return logits(model, split.x, normalizer, batch_size=batch_size, device=device), split.y


def evaluate(model: nn.Module, data: DataBundle | Split | TorchData | StreamSplit, *,
             normalizer: Callable | None = None, batch_size: int = 1024,
             device: torch.device | str | None = None) -> dict:
    """``{"loss", "acc", "n"}`` on a split (a bundle means its default split: test, else validation).

    ``normalizer`` maps uint8 images to model input; by default the data's own standardization. For a trained
    run use ``run.evaluate`` (or pass ``run.normalizer``) so the run's training statistics are used. Streamed data
    (:class:`~compress.data.torch_data.TorchData`, a ``StreamSplit``) is read batch by batch.
    """
    split = data if isinstance(data, (Split, StreamSplit)) else data.split()
    if not split.labeled:
        raise ValueError("evaluate needs labels; this split is unlabeled (use predict)")
    if normalizer is None:
        if isinstance(data, StreamSplit):
            raise TypeError("evaluate: a streamed split has no statistics of its own; pass normalizer= (the run's, "
                            "or its TorchData's normalizer), or the TorchData itself")
        normalizer = data.normalizer if isinstance(data, (DataBundle, TorchData)) else data.normalize
    out, y = split_logits(model, split, normalizer, batch_size=batch_size, device=device)
    if not len(y):
        raise ValueError("evaluate: the split has no images")
    return {"loss": float(F.cross_entropy(out, y)), "acc": float((out.argmax(1) == y).float().mean()),
            "n": len(y)}


def evaluate_members(model: nn.Module, split: Split, normalizer: Callable, members: int, *, batch_size: int = 1024,
                     device: torch.device | str | None = None) -> tuple[list[float], list[float]]:
    """Per-member mean cross-entropy and accuracy of a stacked model (``members`` side by side,
    :mod:`compress.train.stack`) on a labeled ``split``: every member sees every image. Raises ValueError for an
    empty or unlabeled split."""
    if not len(split) or not split.labeled:
        raise ValueError("evaluate_members needs a labeled split with at least one image")
    out = logits(model, split.x, lambda xb: stack_inputs([normalizer(xb)] * members), batch_size=batch_size,
                 device=device)
    out = split_outputs(out, members)                                                    # (K, n, classes)
    n, y = len(split), split.y
    ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.repeat(members), reduction="none").view(members, n)
    # summed batch by batch (float32) and over the batches in float64, as fused training always has
    # a tensor: a labeled split has at least one image (refused above otherwise)
    loss_sum = cast(torch.Tensor, sum(ce[:, i:i + batch_size].sum(1).double() for i in range(0, n, batch_size)))
    correct = (out.argmax(-1) == y).sum(1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()


def predict(model: nn.Module, x: torch.Tensor, normalizer: Callable | None = None, *,
            batch_size: int = 1024, device: torch.device | str | None = None) -> torch.Tensor:
    """Predicted labels (int64, CPU) for images ``x``. ``normalizer``: a run's or a bundle's normalizer;
    required for uint8 images (see :func:`logits`)."""
    return logits(model, x, normalizer, batch_size=batch_size, device=device).argmax(1)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float()
