"""What other methods plug into the training loop. compress.train imports none of them; they are passed in:

    Regularizer           a loss term of the model added at every step, ``fit(..., regularizer=...)``
                          (``compress.prune.BatchNormL1``: network slimming's L1 on BatchNorm scales)
    WeightTransformHook   training through transformed weights, ``fit(..., weight_transform=...)``: pruning masks,
                          fake quantization, shared centroids (``compress.quant.qat.WeightTransform``)
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Regularizer", "WeightTransformHook", "regularizer_record"]

Regularizer = Callable[[nn.Module], torch.Tensor | float]   # a float: a model it has nothing to add for


@runtime_checkable
class WeightTransformHook(Protocol):
    """The forward pass sees :meth:`weights` in place of the model's own parameters of those names
    (``torch.func.functional_call``); the optimizer trains :meth:`trainable`. The loop calls :meth:`after_step`
    after every optimizer step and :meth:`materialize` once after the last, then keeps the model's weights as
    they are (no best epoch: the trained tensors are the hook's, not the model's state)."""

    def trainable(self) -> list[torch.Tensor]:
        """The tensors the optimizer trains."""

    def weights(self) -> dict[str, torch.Tensor]:   # a dict: what torch.func.functional_call takes
        """Parameter name -> the tensor the forward pass uses instead, with gradients to the trainable tensors."""

    def after_step(self, step: int, total_steps: int) -> None:
        """After optimizer step ``step`` (1 .. ``total_steps``): re-apply masks, advance schedules."""

    def materialize(self) -> object:
        """After the last step: write the trained weights into the model's own parameters."""


def regularizer_record(regularizer: Regularizer | None) -> dict | None:
    """What a run folder's config.json records: the regularizer's ``to_dict()``, else its name."""
    if regularizer is None:
        return None
    to_dict = getattr(regularizer, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return {"name": getattr(regularizer, "__qualname__", type(regularizer).__qualname__)}
